// Preloaded with `node --import` by tests: moves this process's Date.now (and new Date()) by TEST_CLOCK_SKEW_MS,
// as a host whose clock is wrong would. Only for test processes; the gateway never reads this variable.
const skew = Number(process.env.TEST_CLOCK_SKEW_MS ?? 0);
const realNow = Date.now;
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(realNow() + skew);
    else super(...args);
  }
  static now() {
    return realNow() + skew;
  }
};

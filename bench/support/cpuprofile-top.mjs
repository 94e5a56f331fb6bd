// Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went: self time by function, self and
// inclusive time by package. `windows` keeps only samples taken within them (ms before the profile's end).
import { readFileSync } from 'node:fs';

const pkgDir = (url) => {
  const rest = url.slice(url.lastIndexOf('node_modules/') + 'node_modules/'.length).split('/');
  return rest[0].startsWith('@')
    ? [`${rest[0]}/${rest[1]}`, rest.slice(2).join('/')]
    : [rest[0], rest.slice(1).join('/')];
};

/** Short location: package:file, the workspace file, or node's internals. */
function where(url) {
  if (!url) return '(native)';
  if (url.includes('node_modules/')) return pkgDir(url).join(':');
  const i = url.search(/\/(apps|packages)\//);
  return i >= 0 ? url.slice(i + 1) : url.replace(/^file:\/\//, '');
}

function pkgOf(callFrame) {
  const { url, functionName } = callFrame;
  if (functionName === '(garbage collector)') return '(garbage collector)';
  if (!url) return '(native, unattributed)';
  if (url.startsWith('node:')) return 'node internals';
  if (url.includes('node_modules/')) return pkgDir(url)[0];
  const m = /\/(apps|packages)\/([^/]+)\//.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

/**
 * Top `n` functions by self time, and packages by self and by inclusive time (a package counts once per sample
 * when any frame of the stack is in it), as percent of the non-idle samples.
 */
export function topFunctions(file, n = 20, windows = null) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of prof.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  // sample times, in ms before the profile's end
  const times = [];
  let t = prof.startTime;
  for (const d of prof.timeDeltas) {
    t += d;
    times.push(t);
  }
  const inWindow = (i) =>
    !windows ||
    windows.some(([a, b]) => {
      const before = (prof.endTime - times[i]) / 1000;
      return before <= a && before >= b;
    });
  let total = 0;
  let idle = 0;
  const fn = new Map();
  const pkg = new Map();
  const incl = new Map();
  const charged = new Map();
  const add = (m, k) => m.set(k, (m.get(k) ?? 0) + 1);
  prof.samples.forEach((id, i) => {
    if (!inWindow(i)) return;
    const { callFrame } = byId.get(id);
    total++;
    if (callFrame.functionName === '(idle)') {
      idle++;
      return;
    }
    add(fn, `${callFrame.functionName || '(anonymous)'} ${where(callFrame.url)}:${callFrame.lineNumber + 1}`);
    add(pkg, pkgOf(callFrame));
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame;
      if (cf.functionName === '(root)') continue;
      seen.add(pkgOf(cf));
    }
    for (const p of seen) add(incl, p);
    // node's internals and native code charged to the nearest caller in a package or in our code
    let owner = null;
    for (let cur = id; cur !== undefined && owner === null; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame;
      const p = pkgOf(cf);
      if (p !== 'node internals' && p !== '(native, unattributed)' && cf.functionName !== '(root)') owner = p;
    }
    add(charged, owner ?? '(node internals, no caller: event loop, sockets, timers)');
  });
  const busy = total - idle;
  const pct = (c) => Math.round((1000 * c) / busy) / 10;
  const top = (m, k) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, k)
      .map(([name, c]) => ({ name, percent: pct(c) }));
  return {
    samples: total,
    busyPercentOfWall: Math.round((1000 * busy) / Math.max(1, total)) / 10,
    selfByFunction: top(fn, n),
    selfByPackage: top(pkg, 15),
    inclusiveByPackage: top(incl, 15),
    chargedToCallerPackage: top(charged, 15),
  };
}

if (process.argv[1]?.endsWith('cpuprofile-top.mjs')) {
  console.log(JSON.stringify(topFunctions(process.argv[2], Number(process.argv[3] ?? 30)), null, 2));
}

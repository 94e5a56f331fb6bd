/**
 * For a process's entry point: a configuration the process must not run with (ConfigError from loadConfig,
 * RedisConfigError from checkRedisConfig) is printed as one clear message and ends the process with 78
 * (EX_CONFIG). Anything else is thrown on.
 */
export function refuseToStart(app: string, e: unknown): never {
  if (e instanceof Error && (e.name === 'ConfigError' || e.name === 'RedisConfigError')) {
    process.stderr.write(`otp-gateway ${app}: ${e.message}\n`);
    process.exit(78);
  }
  throw e;
}

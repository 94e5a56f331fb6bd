import 'dotenv/config';
import { buildSimulator } from './app.js';
import { loadSimulatorConfig, SimulatorConfigError } from './sim.config.js';

/** Runs the simulator: reads the environment, listens, logs pino JSON lines, stops on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadSimulatorConfig>;
  try {
    config = loadSimulatorConfig(process.env);
  } catch (err) {
    if (!(err instanceof SimulatorConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  const app = await buildSimulator({ ...config.simulator, logger: { level: config.logLevel } });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'simulator stopping');
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  await app.listen({ port: config.port, host: config.host });
}

main().catch((err: unknown) => {
  process.stderr.write(
    `simulator failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});

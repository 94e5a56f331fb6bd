export { buildSimulator } from './app.js';
export type { InboxMessage } from './inbox.js';
export { loadSimulatorConfig, type SimulatorConfig, SimulatorConfigError } from './sim.config.js';
export {
  FAULT_KINDS,
  type FaultKind,
  type FaultSettings,
  NO_FAULTS,
  SIM_PROVIDERS,
  SIMULATOR_DEFAULTS,
  type SimProvider,
  type SimulatorInput,
  type SimulatorOptions,
} from './sim.options.js';

export { type Coordinator, startCoordinator } from './coordinator.js';
export { type RunReportOptions, writeRunReport } from './dashboard/run-report.js';
export type {
  CoordinatorOptions,
  EvaluationReport,
  RunCallbacks,
  RunSummary,
  StepReport,
} from './options.js';
export {
  type RunDirectoryState,
  RunFiles,
  runDirectoryState,
  storedModel,
  storedSummary,
} from './run/run-directory.js';
export {
  COORDINATOR_DEFAULTS,
  TOPOLOGIES,
  type Topology,
} from './settings.js';
export type { StepBytes } from './telemetry/step-bytes.js';
export { advertisedUrls } from './transport/advertised-addresses.js';
export type { ServerTlsOptions } from './transport/server.js';
export type { WorkerInfo, WorkerState } from './workers/connection.js';

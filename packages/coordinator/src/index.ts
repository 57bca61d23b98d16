export { advertisedUrls } from './advertised-addresses.js';
export { type Coordinator, startCoordinator } from './coordinator.js';
export type { CoordinatorOptions, EvaluationReport, RunSummary, StepReport } from './options.js';
export { RunFiles, storedSummary } from './run-directory.js';
export type { ServerTlsOptions } from './server.js';
export type { WorkerInfo, WorkerState } from './worker-connection.js';

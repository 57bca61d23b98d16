export { type Coordinator, startCoordinator } from './coordinator.js';
export type { CoordinatorOptions, EvaluationReport, RunSummary, StepReport } from './options.js';
export type { ServerTlsOptions } from './server.js';
export { COORDINATOR_DEFAULTS } from './settings.js';
export type { WorkerInfo, WorkerState } from './worker-connection.js';

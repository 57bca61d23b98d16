export { type Coordinator, startCoordinator } from './coordinator.js';
export type { CoordinatorOptions, EvaluationReport, RunSummary, StepReport } from './options.js';
export { COORDINATOR_DEFAULTS } from './settings.js';
export type { ServerTlsOptions } from './transport/server.js';
export type { WorkerInfo, WorkerState } from './workers/connection.js';

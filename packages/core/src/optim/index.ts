export type {
  AdamSpec,
  AdamWSpec,
  MomentumSpec,
  Optimizer,
  OptimizerFactory,
  OptimizerName,
  OptimizerSpec,
  OptimizerState,
  SgdSpec,
} from './optimizer.js';
export { OptimizerNames } from './optimizer.js';
export type { AnyOptimizerSpec } from './registry.js';
export { createOptimizer, registeredOptimizerNames, registerOptimizer } from './registry.js';
export type {
  ConstantSchedule,
  CosineSchedule,
  LearningRateSchedule,
  StepSchedule,
} from './schedules.js';
export { learningRateAt, ScheduleKinds } from './schedules.js';

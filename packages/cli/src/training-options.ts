import { resolve } from 'node:path';
import { COORDINATOR_DEFAULTS, TOPOLOGIES, type Topology } from '@callosum/coordinator';
import {
  BATCH_NORM_MODES,
  BackendNames,
  type BatchNormMode,
  CallosumError,
  DEFAULT_TRAINING_CONFIG,
  ErrorCodes,
  type LearningRateSchedule,
  loadTaskModule,
  registeredModelNames,
  registeredOptimizerNames,
  ScheduleKinds,
  type Task,
  type TrainingConfig,
  WIRE_DTYPES,
  type WireDtype,
} from '@callosum/core';
import { MAX_WORKER_THREADS, usableCores, WORKER_DEFAULTS } from '@callosum/worker';
import type { Command, Option } from 'commander';
import { booleanOption, envOption, PATH_ARGUMENT } from './env-options.js';
import { integer, positiveNumber } from './option-parsers.js';

/** The option values commander hands over for the flags defined below. */
export interface TrainingFlags {
  task?: string;
  model: string;
  epochs: number;
  batchSize: number;
  optimizer: string;
  lr: number;
  schedule: string;
  warmupSteps: number;
  seed: number;
  maxShift: number;
  microBatchSize?: number;
  batchNorm: BatchNormMode;
  steps?: number;
  data?: string;
  out?: string;
}

/** The flags that define a training run (shared by `train` and `coordinator`). */
export function trainingOptions(): Option[] {
  const defaults = DEFAULT_TRAINING_CONFIG;
  return [
    envOption(
      '--task <module>',
      'a task module to train (its default export is defineTask({ model, data, loss })); without it, --model on MNIST',
    ),
    envOption('--model <name>', 'built-in model to train on MNIST (without --task)')
      .choices(registeredModelNames())
      .default(defaults.model.name),
    envOption('--epochs <n>', 'passes over the training set').argParser(integer(1)).default(defaults.epochs),
    envOption('--batch-size <n>', 'global batch size (split across workers)')
      .argParser(integer(1))
      .default(defaults.batchSize),
    envOption('--optimizer <name>', 'optimizer')
      .choices(registeredOptimizerNames())
      .default(defaults.optimizer.name),
    envOption('--lr <rate>', 'base learning rate').argParser(positiveNumber).default(defaults.learningRate),
    envOption('--schedule <kind>', 'learning-rate schedule')
      .choices([ScheduleKinds.CONSTANT, ScheduleKinds.COSINE])
      .default(defaults.schedule.kind),
    envOption('--warmup-steps <n>', 'linear learning-rate warmup steps').argParser(integer(0)).default(0),
    envOption('--seed <n>', 'seed for initial weights and shuffling')
      .argParser(integer(0, 2 ** 32 - 1))
      .default(defaults.seed),
    envOption(
      '--max-shift <pixels>',
      'augment: shift training images randomly by up to this much (with --task: 0 unless given)',
    )
      .argParser(integer(0, 8))
      .default(defaults.maxShift),
    envOption(
      '--micro-batch-size <n>',
      'deterministic reduction: gradients per micro-batch of n samples, added along a fixed tree, ' +
        'so the weights are bit-identical at any worker count (default: off)',
    ).argParser(integer(1)),
    envOption(
      '--batch-norm <mode>',
      'local: BatchNormalization normalises each shard with its own statistics, as DDP; sync: with the ' +
        "whole batch's, as one process would (SyncBatchNorm; 2 extra passes per layer each step)",
    )
      .choices(BATCH_NORM_MODES)
      .default('local'),
    envOption('--steps <n>', 'stop after this many steps').argParser(integer(1)),
    envOption('--data <dir>', 'MNIST-format directory (default: the embedded real MNIST)'),
    envOption('--out <dir>', 'run directory for the model and metrics (default: runs/<timestamp>)'),
  ];
}

/**
 * The task of `--task`, loaded from this machine; undefined for a run of a built-in model. --model and
 * --data on the command line contradict it; from the environment (a deployment's settings for the
 * built-in model) they are ignored.
 */
export async function taskFrom(command: Command, flags: TrainingFlags): Promise<Task | undefined> {
  if (flags.task === undefined) return undefined;
  for (const [key, flag] of [
    ['model', '--model'],
    ['data', '--data'],
  ] as const) {
    if (command.getOptionValueSource(key) === 'cli') {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `${flag} is for the built-in MNIST models; with --task the task module builds its model and loads its data`,
      );
    }
  }
  return loadTaskModule(flags.task, { log: (line) => process.stderr.write(`callosum: ${line}\n`) });
}

/**
 * The training options of the flags. A built-in model's run takes every flag, defaults included; a
 * task's run only the flags given, so that the task's own defaults (its optimizer, epochs, ...) hold.
 */
export function trainingOptionsFrom(command: Command, flags: TrainingFlags): Partial<TrainingConfig> {
  const all: TrainingConfig = {
    model: { name: flags.model },
    epochs: flags.epochs,
    batchSize: flags.batchSize,
    optimizer: { name: flags.optimizer },
    learningRate: flags.lr,
    schedule: scheduleFrom(flags),
    seed: flags.seed,
    maxShift: flags.maxShift,
    maxSteps: flags.steps,
    microBatchSize: flags.microBatchSize,
    batchNorm: flags.batchNorm,
  };
  if (flags.task === undefined) return all;
  const given = (key: keyof TrainingFlags) => givenExplicitly(command, key);
  const scheduleGiven = given('schedule') || given('warmupSteps');
  return Object.fromEntries(
    Object.entries({
      epochs: given('epochs') ? all.epochs : undefined,
      batchSize: given('batchSize') ? all.batchSize : undefined,
      optimizer: given('optimizer') ? all.optimizer : undefined,
      learningRate: given('lr') ? all.learningRate : undefined,
      // A task's runs keep a constant rate unless --schedule says otherwise.
      schedule: scheduleGiven
        ? scheduleFrom({ ...flags, schedule: given('schedule') ? flags.schedule : ScheduleKinds.CONSTANT })
        : undefined,
      seed: given('seed') ? all.seed : undefined,
      maxShift: given('maxShift') ? all.maxShift : undefined,
      maxSteps: all.maxSteps,
      microBatchSize: all.microBatchSize,
      batchNorm: given('batchNorm') ? all.batchNorm : undefined,
    }).filter(([, value]) => value !== undefined),
  );
}

/** Whether the flag of `key` was given, on the command line or in the environment (not its default). */
function givenExplicitly(command: Command, key: string): boolean {
  const source = command.getOptionValueSource(key);
  return source === 'cli' || source === 'env';
}

function scheduleFrom(flags: Pick<TrainingFlags, 'schedule' | 'warmupSteps'>): LearningRateSchedule {
  const warmupSteps = flags.warmupSteps;
  if (flags.schedule === ScheduleKinds.COSINE) {
    // totalSteps 0: decay over the whole run (its length is known once the dataset is loaded).
    return { kind: ScheduleKinds.COSINE, totalSteps: 0, warmupSteps };
  }
  return { kind: ScheduleKinds.CONSTANT, warmupSteps };
}

export function backendOption(): Option {
  return envOption('--backend <name>', 'compute backend for workers')
    .choices(Object.values(BackendNames))
    .default(WORKER_DEFAULTS.backend);
}

/** --threads: compute threads per worker; its default (`shared`) is how the usable cores are shared. */
export function threadsOption(shared: string): Option {
  return envOption(
    '--threads <n>',
    `compute threads per worker process (default: ${shared}; ${usableCores()} usable cores here)`,
  ).argParser(integer(1, MAX_WORKER_THREADS));
}

/** --topology, for every command that runs a coordinator. */
export function topologyOption(): Option {
  return envOption(
    '--topology <kind>',
    "star: workers send gradients to the coordinator; ring: workers reduce among themselves (--resume keeps the run's unless given)",
  )
    .choices(TOPOLOGIES)
    .default(COORDINATOR_DEFAULTS.topology);
}

/** --wire-dtype: what weights and gradients travel in; the coordinator tells its workers. */
export function wireDtypeOption(): Option {
  return envOption(
    '--wire-dtype <dtype>',
    'send weights and gradients as float32, or rounded to float16/bfloat16 (half the bytes per step; ' +
      "the coordinator's weights stay float32; --resume keeps the run's unless given)",
  )
    .choices(WIRE_DTYPES)
    .default(COORDINATOR_DEFAULTS.wireDtype);
}

/** --shared-memory: workers on the coordinator's machine move large frames through files on /dev/shm. */
export function sharedMemoryOption(): Option {
  return booleanOption(
    '--shared-memory',
    'workers on this machine exchange weights and gradients through files in /dev/shm, not the socket',
  ).default(true);
}

export function portOption(defaultPort: number): Option {
  return envOption('--port <n>', 'coordinator port (0 = any free port)')
    .argParser(integer(0, 65535))
    .default(defaultPort);
}

export interface CheckpointFlags {
  resume?: string;
  overwrite?: boolean;
  checkpointEvery: number;
}

/** --resume, --overwrite and --checkpoint-every, shared by every command that runs a coordinator. */
export function checkpointOptions(): Option[] {
  return [
    envOption(
      '--resume <dir>',
      'continue the run in this run directory from its newest intact checkpoint (its settings win)',
    ),
    booleanOption(
      '--overwrite',
      "start a new run in an --out directory that holds another run, moving that run's files aside",
    ),
    envOption(
      '--checkpoint-every <steps>',
      "checkpoint interval (also at each epoch end and on SIGTERM); --resume keeps the run's unless given",
    )
      .argParser(integer(1))
      .default(COORDINATOR_DEFAULTS.checkpointEverySteps),
  ];
}

/** Coordinator options for the checkpoint flags. */
export interface CheckpointSettings {
  readonly outDir: string;
  readonly resume: boolean;
  readonly overwrite: boolean;
  /** Only when --checkpoint-every is given: a resumed run otherwise keeps the interval it stored. */
  readonly checkpointEverySteps?: number;
}

/**
 * The checkpoint settings of the flags; a resumed run writes into the directory it resumes, and keeps
 * its checkpoint interval unless --checkpoint-every is given (on the command line or in the environment).
 */
export function checkpointSettings(
  command: Command,
  flags: CheckpointFlags & { out?: string },
): CheckpointSettings {
  return {
    outDir: flags.resume ?? flags.out ?? defaultRunDirectory(),
    resume: flags.resume !== undefined,
    overwrite: flags.overwrite === true,
    ...(givenExplicitly(command, 'checkpointEvery') ? { checkpointEverySteps: flags.checkpointEvery } : {}),
  };
}

/** The settings a run stores besides its checkpoint interval, as the coordinator's options. */
export interface StoredRunOptions {
  readonly topology?: Topology;
  readonly wireDtype?: WireDtype;
  readonly peerTls?: boolean;
}

/**
 * --topology, --wire-dtype and (callosum coordinator) --peer-tls, only when given (on the command line
 * or in the environment): a resumed run otherwise continues with the ones it stored (a ring run stays a
 * ring run), a new run takes the defaults.
 */
export function storedRunOptions(
  command: Command,
  flags: { topology: Topology; wireDtype: WireDtype; peerTls?: boolean },
): StoredRunOptions {
  return {
    ...(givenExplicitly(command, 'topology') ? { topology: flags.topology } : {}),
    ...(givenExplicitly(command, 'wireDtype') ? { wireDtype: flags.wireDtype } : {}),
    ...(givenExplicitly(command, 'peerTls') ? { peerTls: flags.peerTls === true } : {}),
  };
}

/** Flags a resumed run cannot apply: its checkpoint fixes the training config and the directory. */
const STORED_BY_THE_RUN = [
  'model',
  'epochs',
  'batchSize',
  'optimizer',
  'lr',
  'schedule',
  'warmupSteps',
  'seed',
  'maxShift',
  'microBatchSize',
  'batchNorm',
  'steps',
  'out',
  'overwrite',
] as const;

/**
 * The flags given (on the command line or in the environment) that `--resume` ignores, by name. Changing
 * --steps or --epochs would change the learning-rate schedule of steps already taken, so none applies.
 */
export function flagsIgnoredOnResume(command: Command): string[] {
  return command.options
    .filter((option) => {
      const key = option.attributeName() as (typeof STORED_BY_THE_RUN)[number];
      const source = command.getOptionValueSource(key);
      return STORED_BY_THE_RUN.includes(key) && (source === 'cli' || source === 'env');
    })
    .map((option) => option.long ?? option.name());
}

/**
 * The command that continues this run: this command with the flags the run does not store (workers,
 * port, token file, …) as given, paths made absolute, and `--resume <dir>`.
 */
export function resumeCommand(command: Command, runDir: string): string {
  const kept = command.options.flatMap((option) => {
    const key = option.attributeName();
    // Not --token: a secret printed on the terminal ends up in scrollback and logs.
    const stored =
      (STORED_BY_THE_RUN as readonly string[]).includes(key) || key === 'resume' || key === 'token';
    if (stored || command.getOptionValueSource(key) !== 'cli' || option.long === undefined) return [];
    const value: unknown = command.getOptionValue(key);
    if (value === true) return [option.long];
    if (value === false) return [option.long, 'no'];
    // Absolute, so that the command works from any directory.
    const word = PATH_ARGUMENT.test(option.flags) ? resolve(String(value)) : String(value);
    return [option.long, shellQuote(word)];
  });
  return ['callosum', command.name(), ...kept, '--resume', shellQuote(resolve(runDir))].join(' ');
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

export function defaultRunDirectory(): string {
  return `runs/${new Date().toISOString().replace(/[:.]/g, '-')}`;
}

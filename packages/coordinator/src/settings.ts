import {
  CallosumError,
  DEFAULT_WIRE_DTYPE,
  ErrorCodes,
  integerOption,
  numberOption,
  parseOptions,
  positiveNumberOption,
  trainingConfigSchema,
  WIRE_DTYPES,
} from '@callosum/core';
import { z } from 'zod';
import { COORDINATOR_OPTION_NAMES, type CoordinatorOptions } from './options.js';

/**
 * Every default of the coordinator's options, in one place: the library applies them and the CLI can
 * show them in its help. The start timeout is the CLI's 10 minutes, so that `callosum coordinator` and
 * `startCoordinator` wait equally long for workers on slow-starting hosts (GPU pods pulling images).
 */
export const COORDINATOR_DEFAULTS = {
  host: '127.0.0.1',
  port: 0,
  minWorkers: 1,
  maxWorkers: Number.POSITIVE_INFINITY,
  startTimeoutMs: 600_000,
  noWorkerTimeoutMs: 60_000,
  heartbeatIntervalMs: 1_000,
  heartbeatTimeoutMs: 30_000,
  shardDeadlineMs: 120_000,
  checkpointEverySteps: 100,
  keepCheckpoints: 3,
  handshakeTimeoutMs: 10_000,
  maxBadResults: 3,
  maxLateShards: 3,
  evictionCooldownMs: 30_000,
  connectionRate: { perSecond: 20, burst: 64 },
  stragglerFactor: 4,
  stragglerFloorMs: 2_000,
  topology: 'star' as Topology,
  replicaCheckEverySteps: 50,
  peerTls: false,
  wireDtype: DEFAULT_WIRE_DTYPE,
} as const;

/** star: the coordinator reduces and applies every step. ring: the workers do, among themselves. */
export const TOPOLOGIES = ['star', 'ring'] as const;
export type Topology = (typeof TOPOLOGIES)[number];

const positiveInteger = integerOption(1);
const positiveMs = positiveNumberOption();
const nonNegativeMs = numberOption((value) => Number.isFinite(value) && value >= 0, 'a finite number >= 0');

/**
 * The options that tune the run, with their defaults. The rest of CoordinatorOptions (dataset,
 * training config, TLS texts, callbacks) is checked where it is used.
 */
const settingsShape = z.object({
  host: z.string().min(1).default(COORDINATOR_DEFAULTS.host),
  port: integerOption(0, 65_535).default(COORDINATOR_DEFAULTS.port),
  minWorkers: positiveInteger.default(COORDINATOR_DEFAULTS.minWorkers),
  // No limit is the default: Infinity is allowed here, and only here among the worker counts.
  maxWorkers: z
    .union([positiveInteger, z.literal(Number.POSITIVE_INFINITY)])
    .default(COORDINATOR_DEFAULTS.maxWorkers),
  startTimeoutMs: positiveMs.default(COORDINATOR_DEFAULTS.startTimeoutMs),
  noWorkerTimeoutMs: nonNegativeMs.default(COORDINATOR_DEFAULTS.noWorkerTimeoutMs),
  heartbeatIntervalMs: positiveMs.default(COORDINATOR_DEFAULTS.heartbeatIntervalMs),
  heartbeatTimeoutMs: positiveMs.default(COORDINATOR_DEFAULTS.heartbeatTimeoutMs),
  shardDeadlineMs: positiveMs.default(COORDINATOR_DEFAULTS.shardDeadlineMs),
  checkpointEverySteps: positiveInteger.default(COORDINATOR_DEFAULTS.checkpointEverySteps),
  keepCheckpoints: positiveInteger.default(COORDINATOR_DEFAULTS.keepCheckpoints),
  handshakeTimeoutMs: positiveMs.default(COORDINATOR_DEFAULTS.handshakeTimeoutMs),
  maxBadResults: positiveInteger.default(COORDINATOR_DEFAULTS.maxBadResults),
  maxLateShards: positiveInteger.default(COORDINATOR_DEFAULTS.maxLateShards),
  evictionCooldownMs: nonNegativeMs.default(COORDINATOR_DEFAULTS.evictionCooldownMs),
  maxBufferedBytes: positiveInteger.optional(),
  connectionRate: z
    .object({ perSecond: positiveNumberOption(), burst: positiveInteger })
    .default(COORDINATOR_DEFAULTS.connectionRate),
  // An infinite factor turns the straggler deadline off.
  stragglerFactor: numberOption((value) => value >= 1, 'a number >= 1 (Infinity: off)').default(
    COORDINATOR_DEFAULTS.stragglerFactor,
  ),
  stragglerFloorMs: nonNegativeMs.default(COORDINATOR_DEFAULTS.stragglerFloorMs),
  topology: z.enum(TOPOLOGIES).default(COORDINATOR_DEFAULTS.topology),
  replicaCheckEverySteps: positiveInteger.default(COORDINATOR_DEFAULTS.replicaCheckEverySteps),
  peerTls: z.boolean().default(COORDINATOR_DEFAULTS.peerTls),
  wireDtype: z.enum(WIRE_DTYPES).default(COORDINATOR_DEFAULTS.wireDtype),
});

const settingsSchema = settingsShape.superRefine((settings, context) => {
  if (settings.minWorkers > settings.maxWorkers) {
    context.addIssue({
      code: 'custom',
      path: ['minWorkers'],
      message: `must be at most maxWorkers (${settings.maxWorkers}), got ${settings.minWorkers}`,
    });
  }
  if (settings.peerTls && settings.topology !== 'ring') {
    context.addIssue({
      code: 'custom',
      path: ['peerTls'],
      message: `is for the ring topology, whose workers talk to each other; this run's topology is ${settings.topology}`,
    });
  }
});

export type CoordinatorSettings = z.output<typeof settingsSchema>;

/**
 * The settings a run keeps in its directory: they change no training config, but a run continued with
 * others would not be the run it was (a ring run become a star, float16 gradients become float32), so
 * `--resume` keeps them unless it is given others.
 */
const STORED_SETTING_NAMES = {
  checkpointEverySteps: true,
  topology: true,
  wireDtype: true,
  peerTls: true,
} as const;
export const storedRunSettingsSchema = settingsShape.pick(STORED_SETTING_NAMES).partial();
export type StoredRunSettings = z.output<typeof storedRunSettingsSchema>;

/** The stored settings of a run's resolved settings. */
export function storedRunSettingsOf(settings: CoordinatorSettings): Required<StoredRunSettings> {
  const { checkpointEverySteps, topology, wireDtype, peerTls } = settings;
  return { checkpointEverySteps, topology, wireDtype, peerTls };
}

/**
 * Each stored setting `options` change, as "name: stored → given", for the run to say what changed when
 * it is resumed with other settings than it stored.
 */
export function changedStoredSettings(options: CoordinatorOptions, stored: StoredRunSettings): string[] {
  return Object.keys(STORED_SETTING_NAMES).flatMap((name) => {
    const key = name as keyof StoredRunSettings;
    const given = options[key];
    const had = stored[key];
    return given === undefined || had === undefined || given === had ? [] : [`${key} ${had} → ${given}`];
  });
}

/**
 * The options with every default filled in, or an INVALID_ARGUMENT error naming each bad field
 * ("coordinator options: minWorkers must be at most maxWorkers (2), got 3") or unknown option.
 */
export function resolveCoordinatorSettings(
  options: CoordinatorOptions,
  /** A resumed run's stored settings: they apply where `options` leave a setting out. */
  stored: StoredRunSettings = {},
): CoordinatorSettings {
  const unknown = Object.keys(options).filter((name) => !Object.hasOwn(COORDINATOR_OPTION_NAMES, name));
  if (unknown.length > 0) {
    const named = unknown.map((name) =>
      Object.hasOwn(trainingConfigSchema.shape, name)
        ? `${name} (a training setting: put it in training)`
        : name,
    );
    throw new CallosumError(
      ErrorCodes.INVALID_ARGUMENT,
      `coordinator options: unknown option ${named.join(', ')}`,
    );
  }
  const given = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  return parseOptions(settingsSchema, { ...stored, ...given }, 'coordinator options');
}

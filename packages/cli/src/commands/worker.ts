import type { BackendPreference } from '@callosum/core';
import { runWorker, WORKER_DEFAULTS, workerNameProblem } from '@callosum/worker';
import { type Command, InvalidArgumentError } from 'commander';
import { addOptions, envOption } from '../env-options.js';
import { coordinatorUrl, integer } from '../option-parsers.js';
import {
  clientTlsFrom,
  clientTlsOptions,
  type PeerTlsFlags,
  peerTlsFrom,
  peerTlsOptions,
  type TlsFlags,
} from '../tls-options.js';
import { type TokenFlags, tokenFrom, tokenOptions } from '../token.js';
import { backendOption, threadsOption } from '../training-options.js';

interface WorkerFlags extends TokenFlags, TlsFlags, PeerTlsFlags {
  connect: string;
  /** One of commander's choices (backendOption). */
  backend: BackendPreference;
  name?: string;
  giveUpAfter: number;
  threads?: number;
  task?: string;
  peerPort: number;
  advertiseHost?: string;
}

export function registerWorkerCommand(program: Command): void {
  const command = program
    .command('worker')
    .description('compute gradients for a coordinator until its run ends');
  addOptions(command, [
    envOption('--connect <url>', 'coordinator address, ws://host:port')
      .argParser(coordinatorUrl)
      .makeOptionMandatory(),
    envOption(
      '--name <name>',
      'name shown in the coordinator log (default host:pid)',
      'CALLOSUM_WORKER_NAME',
    ),
    envOption('--give-up-after <ms>', 'exit 1 after this long without a coordinator')
      .argParser(integer(1))
      .default(WORKER_DEFAULTS.giveUpAfterMs),
    envOption('--task <module>', "the run's task module, loaded from this machine (runs of --task only)"),
    backendOption(),
    threadsOption('every core this process may use'),
    envOption('--peer-port <n>', 'ring topology: port to listen on for peer workers (0 = any free port)')
      .argParser(integer(0, 65535))
      .default(WORKER_DEFAULTS.peerPort),
    envOption(
      '--advertise-host <host>',
      'ring topology: address peers reach this worker at (default: its address towards the coordinator)',
    ),
    ...tokenOptions(),
    ...clientTlsOptions(),
    ...peerTlsOptions(),
  ]);
  command.action(async (flags: WorkerFlags) => {
    const nameProblem = flags.name === undefined ? undefined : workerNameProblem(flags.name);
    if (nameProblem !== undefined) {
      // Refused at start: the coordinator refuses such a name in every hello (retrying cannot help). The
      // name itself is not repeated: it may hold the very characters refused.
      throw new InvalidArgumentError(`--name (or CALLOSUM_WORKER_NAME) ${nameProblem}`);
    }
    const token = tokenFrom(flags);
    const tls = clientTlsFrom(flags);
    const peerTls = peerTlsFrom(flags);
    const exit = await runWorker({
      ...(tls === undefined ? {} : { tls }),
      ...(peerTls === undefined ? {} : { peerTls }),
      ...(token === undefined ? {} : { token }),
      url: flags.connect,
      backend: flags.backend,
      giveUpAfterMs: flags.giveUpAfter,
      ...(flags.threads === undefined ? {} : { threads: flags.threads }),
      ...(flags.name === undefined ? {} : { name: flags.name }),
      ...(flags.task === undefined ? {} : { task: flags.task }),
      peerPort: flags.peerPort,
      ...faultInjection(),
      ...(flags.advertiseHost === undefined ? {} : { advertiseHost: flags.advertiseHost }),
    });
    process.stderr.write(`worker: ${exit.reason} (${exit.stepsComputed} shards computed)\n`);
    process.exitCode = exit.exitCode;
  });
}

/**
 * Fault injection for tests, from the environment only (no flag, so nobody sets it by accident):
 * CALLOSUM_FAULT_CORRUPT_REPLICA_AT=<step> (a ring run's divergence detection),
 * CALLOSUM_FAULT_STOP_IN_BATCH_NORM_AT=<step> (a worker lost in a BatchNormalization pass) and
 * CALLOSUM_FAULT_STOP_IN_EVALUATION_AT=<round> (a run stopped during an evaluation).
 */
function faultInjection(): {
  corruptReplicaAt?: number;
  stopInBatchNormAt?: number;
  stopInEvaluationAt?: number;
} {
  const {
    CALLOSUM_FAULT_CORRUPT_REPLICA_AT: corrupt,
    CALLOSUM_FAULT_STOP_IN_BATCH_NORM_AT: stopInBatchNorm,
    CALLOSUM_FAULT_STOP_IN_EVALUATION_AT: stopInEvaluation,
  } = process.env;
  return {
    ...(corrupt === undefined ? {} : { corruptReplicaAt: Number(corrupt) }),
    ...(stopInBatchNorm === undefined ? {} : { stopInBatchNormAt: Number(stopInBatchNorm) }),
    ...(stopInEvaluation === undefined ? {} : { stopInEvaluationAt: Number(stopInEvaluation) }),
  };
}

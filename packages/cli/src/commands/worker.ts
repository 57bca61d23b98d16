import { runWorker, WORKER_DEFAULTS } from '@callosum/worker';
import type { Command } from 'commander';
import { coordinatorUrl, integer } from '../option-parsers.js';
import { addClientTlsOptions, clientTlsFrom, type TlsFlags } from '../tls-options.js';
import { addTokenOptions, type TokenFlags, tokenFrom } from '../token.js';
import { addBackendOption, envOption } from '../training-options.js';

interface WorkerFlags extends TokenFlags, TlsFlags {
  connect: string;
  backend: string;
  name?: string;
  giveUpAfter: number;
}

export function registerWorkerCommand(program: Command): void {
  const command = program
    .command('worker')
    .description('compute gradients for a coordinator until its run ends')
    .addOption(
      envOption('--connect <url>', 'coordinator address, ws://host:port', 'CALLOSUM_CONNECT')
        .argParser(coordinatorUrl)
        .makeOptionMandatory(),
    )
    .addOption(
      envOption(
        '--name <name>',
        'name shown in the coordinator log (default host:pid)',
        'CALLOSUM_WORKER_NAME',
      ),
    )
    .addOption(
      envOption(
        '--give-up-after <ms>',
        'exit 1 after this long without a coordinator',
        'CALLOSUM_GIVE_UP_AFTER',
      )
        .argParser(integer(1))
        .default(WORKER_DEFAULTS.giveUpAfterMs),
    );
  addBackendOption(command);
  addTokenOptions(command);
  addClientTlsOptions(command);
  command.action(async (flags: WorkerFlags) => {
    const token = tokenFrom(flags);
    const tls = clientTlsFrom(flags);
    const exit = await runWorker({
      ...(tls === undefined ? {} : { tls }),
      ...(token === undefined ? {} : { token }),
      url: flags.connect,
      backend: flags.backend as 'auto',
      giveUpAfterMs: flags.giveUpAfter,
      ...(flags.name === undefined ? {} : { name: flags.name }),
    });
    process.stderr.write(`worker: ${exit.reason} (${exit.stepsComputed} shards computed)\n`);
    process.exitCode = exit.exitCode;
  });
}

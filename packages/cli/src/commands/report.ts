import { writeRunReport } from '@callosum/coordinator';
import type { Command } from 'commander';
import { addOptions, envOption } from '../env-options.js';

interface ReportFlags {
  output?: string;
}

export function registerReportCommand(program: Command): void {
  const command = program
    .command('report')
    .description(
      "write a run's dashboard, from its metrics.jsonl, as one HTML file that opens without a server",
    )
    .argument('<run-dir>', 'the run directory');
  addOptions(command, [
    envOption(
      '-o, --output <file>',
      'where to write the report (default <run-dir>/report.html)',
      'CALLOSUM_REPORT_OUTPUT',
    ),
  ]);
  command.action(async (runDir: string, flags: ReportFlags) => {
    const written = await writeRunReport({
      runDir,
      ...(flags.output === undefined ? {} : { out: flags.output }),
    });
    process.stdout.write(`wrote ${written}\n`);
  });
}

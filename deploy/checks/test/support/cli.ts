/** The real CLI: which commands, flags and environment variables exist, and what it makes of a container. */
import { createProgram } from '@callosum/cli';
import type { Command } from 'commander';

export interface Cli {
  readonly commands: ReadonlyMap<string, Command>;
  readonly envVars: ReadonlyMap<string, ReadonlySet<string>>;
  readonly allEnvVars: ReadonlySet<string>;
}

export function describeCli(): Cli {
  const commands = new Map(createProgram().commands.map((command) => [command.name(), command]));
  const envVars = new Map(
    [...commands].map(([name, command]) => [
      name,
      new Set(command.options.flatMap((option) => (option.envVar === undefined ? [] : [option.envVar]))),
    ]),
  );
  return { commands, envVars, allEnvVars: new Set([...envVars.values()].flatMap((set) => [...set])) };
}

/** Parses `callosum <command> <args>` with this environment only, the real option parsers and checks included. */
export async function parseWithCli(
  command: string,
  args: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<Record<string, unknown>> {
  const program = createProgram();
  const sub = program.commands.find((candidate) => candidate.name() === command);
  if (sub === undefined) throw new Error(`callosum has no command "${command}"`);
  let parsed: Record<string, unknown> | undefined;
  sub.action((options: Record<string, unknown>) => {
    parsed = options;
  });
  let output = '';
  for (const target of [program, sub]) {
    target.exitOverride().configureOutput({
      writeOut: () => {},
      writeErr: (text) => {
        output += text;
      },
    });
  }
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) if (key.startsWith('CALLOSUM_')) delete process.env[key];
  Object.assign(process.env, env);
  try {
    await program.parseAsync([command, ...args], { from: 'user' });
  } catch (error) {
    const message = (error as Error).message;
    throw new Error(`callosum ${command} rejects it: ${output.includes(message) ? output.trim() : message}`);
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
  if (parsed === undefined) throw new Error(`callosum ${command}: no action ran`);
  return parsed;
}

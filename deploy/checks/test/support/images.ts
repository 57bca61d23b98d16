/** The images, from their Dockerfiles: stages and base image pins, ENTRYPOINT, the coordinator start script. */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { REPO } from './json.js';

export const DOCKER = join(REPO, 'deploy', 'docker');

export interface Dockerfile {
  readonly file: string;
  readonly text: string;
  readonly stages: { from: string; alias: string | undefined; lines: string[] }[];
}

export function readDockerfile(name: string): Dockerfile {
  const file = join(DOCKER, name);
  const text = readFileSync(file, 'utf8');
  // Join continuation lines, drop comments.
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Dockerfile['stages'] = [];
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    const arg = /^ARG\s+(\w+)=(\S*)$/.exec(line);
    if (from) {
      const image = from[1]!.replace(/\$\{(\w+)\}/g, (_, variable: string) => args.get(variable) ?? '');
      stages.push({ from: image, alias: from[2], lines: [] });
    } else if (arg && stages.length === 0) {
      args.set(arg[1]!, arg[2]!);
    } else {
      stages.at(-1)?.lines.push(line);
    }
  }
  return { file, text, stages };
}

export interface ImageFacts {
  /** argv before the container's args when it sets no command: the image's ENTRYPOINT. */
  readonly entrypoint: string[];
  /** Commands installed in the image that run `callosum <command> "$@"`, by name and path. */
  readonly wrappers: ReadonlyMap<string, string>;
}

export function imageFacts(dockerfile: Dockerfile): ImageFacts {
  const final = dockerfile.stages.at(-1)!;
  const entrypointLine = final.lines.find((line) => line.startsWith('ENTRYPOINT'));
  const entrypoint = JSON.parse(entrypointLine?.replace(/^ENTRYPOINT\s+/, '') ?? 'null') as string[];
  const wrappers = new Map<string, string>();
  for (const line of final.lines) {
    const copy = /^COPY\s+deploy\/docker\/(\S+\.sh)\s+(\/\S+)$/.exec(line);
    if (!copy) continue;
    const script = readFileSync(join(DOCKER, copy[1]!), 'utf8');
    const exec = /^exec (.+) (\w+) "\$@"$/m.exec(script);
    if (exec && exec[1] === entrypoint.join(' ')) {
      wrappers.set(copy[2]!, exec[2]!);
      wrappers.set(basename(copy[2]!), exec[2]!);
    }
  }
  return { entrypoint, wrappers };
}

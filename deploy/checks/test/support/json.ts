/** The repository's files, and JSON values (what YAML documents become) read without casts. */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export const rel = (path: string) => relative(REPO, path) || '.';

export function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asObject(value: Json | undefined, what: string): JsonObject {
  if (!isObject(value)) throw new Error(`${what}: expected a mapping, found ${JSON.stringify(value)}`);
  return value;
}

export function asList(value: Json | undefined, what: string): Json[] {
  if (!Array.isArray(value)) throw new Error(`${what}: expected a list, found ${JSON.stringify(value)}`);
  return value;
}

export function asString(value: Json | undefined, what: string): string {
  if (typeof value !== 'string')
    throw new Error(`${what}: expected a string, found ${JSON.stringify(value)}`);
  return value;
}

/** value.a.b[0].c without throwing: undefined where the path does not exist. */
export function at(value: Json | undefined, ...path: (string | number)[]): Json | undefined {
  let current = value;
  for (const step of path) {
    if (typeof step === 'number') current = Array.isArray(current) ? current[step] : undefined;
    else current = isObject(current) ? current[step] : undefined;
  }
  return current;
}

export function clone<T extends Json>(value: T): T {
  return structuredClone(value);
}

export function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return filesUnder(path, keep);
      return keep(entry.name) ? [path] : [];
    })
    .sort();
}

/** Reading the YAML files under deploy/k8s strictly: errors, warnings, duplicate keys and YAML 1.1 pitfalls all fail. */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { isObject, type Json, rel } from './json.js';

/** Every document of a YAML file; fails on any parse error or warning, and on duplicate keys. */
export function loadYaml(file: string): Json[] {
  const text = readFileSync(file, 'utf8');
  const read = (version: '1.1' | '1.2') =>
    parseAllDocuments(text, { version, uniqueKeys: true, prettyErrors: true }).map((document) => {
      const problems = [...document.errors, ...document.warnings];
      if (problems.length > 0) {
        throw new Error(`${rel(file)}: ${problems.map((problem) => problem.message).join('\n')}`);
      }
      return document.toJS({ maxAliasCount: 0 }) as Json;
    });
  const documents = read('1.2');
  // kubectl reads YAML 1.1 (`on`, `yes`, `0755` are not strings there): the files must not depend on it.
  const difference = firstDifference(read('1.1'), documents, '');
  if (difference !== undefined) {
    throw new Error(`${rel(file)}: ${difference} reads differently as YAML 1.1 and 1.2; quote it`);
  }
  return documents.filter((document) => document !== null);
}

function firstDifference(a: Json | undefined, b: Json | undefined, path: string): string | undefined {
  if (isObject(a) && isObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const found = firstDifference(a[key], b[key], `${path}.${key}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let index = 0; index < Math.max(a.length, b.length); index += 1) {
      const found = firstDifference(a[index], b[index], `${path}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  return Object.is(a, b)
    ? undefined
    : `${path || 'the document'} (${JSON.stringify(a)} / ${JSON.stringify(b)})`;
}

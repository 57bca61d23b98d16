/**
 * Kubernetes schema checks, offline, in two parts, both from maintained packages:
 * - `kubernetes-models` validates values (types, enums, quantities, required fields) with its own
 *   validators, which accept unknown fields;
 * - unknown fields (a misspelled key is silently dropped by the API server) are caught by strict JSON
 *   schemas that `ts-json-schema-generator` derives from the same package's type declarations
 *   (`additionalProperties: false` on every object), validated with `ajv`.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { createGenerator } from 'ts-json-schema-generator';
import type { JsonObject } from './json.js';

interface Kind {
  readonly validate: (data: JsonObject) => void;
  /** Module under kubernetes-models and the interface of the object's type declaration. */
  readonly module: string;
  readonly type: string;
}

const KINDS: Readonly<Record<string, Kind>> = {
  'batch/v1 Job': {
    validate: (data) => new Job(data as never).validate(),
    module: 'batch/v1/Job',
    type: 'IJob',
  },
  'v1 Service': {
    validate: (data) => new Service(data as never).validate(),
    module: 'v1/Service',
    type: 'IService',
  },
  'v1 ConfigMap': {
    validate: (data) => new ConfigMap(data as never).validate(),
    module: 'v1/ConfigMap',
    type: 'IConfigMap',
  },
  'v1 PersistentVolumeClaim': {
    validate: (data) => new PersistentVolumeClaim(data as never).validate(),
    module: 'v1/PersistentVolumeClaim',
    type: 'IPersistentVolumeClaim',
  },
  'v1 Pod': { validate: (data) => new Pod(data as never).validate(), module: 'v1/Pod', type: 'IPod' },
  'networking.k8s.io/v1 NetworkPolicy': {
    validate: (data) => new NetworkPolicy(data as never).validate(),
    module: 'networking.k8s.io/v1/NetworkPolicy',
    type: 'INetworkPolicy',
  },
};

/** Strict validators, one per kind, generated once (the TypeScript program behind them takes seconds). */
let strictValidators: Map<string, ValidateFunction> | undefined;

function strictValidator(key: string, kind: Kind): ValidateFunction {
  if (strictValidators === undefined) {
    const root = dirname(createRequire(import.meta.url).resolve('kubernetes-models/package.json'));
    const modules = Object.values(KINDS).map((k) => k.module);
    const generator = createGenerator({
      path: `${root}/{${modules.join(',')}}.d.ts`,
      skipTypeCheck: true,
      additionalProperties: false,
      jsDoc: 'none',
    });
    const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
    strictValidators = new Map(
      Object.entries(KINDS).map(([name, { type }]) => [
        name,
        // A JSON Schema draft-07 document; ajv's own type for one differs only in typing.
        ajv.compile(generator.createSchema(type) as SchemaObject),
      ]),
    );
  }
  const validator = strictValidators.get(key);
  if (validator === undefined) throw new Error(`no strict schema for ${kind.type}`);
  return validator;
}

/** `.spec.containers[0].name` for the JSON pointer `/spec/containers/0/name`. */
function fieldPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((segment) => segment.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((segment) => (/^\d+$/.test(segment) ? `[${segment}]` : `.${segment}`))
    .join('');
}

function describe(error: ErrorObject): string {
  if (error.keyword === 'additionalProperties') {
    return `${fieldPath(error.instancePath)}.${error.params.additionalProperty}: unknown field`;
  }
  return `${fieldPath(error.instancePath) || 'the object'}: ${error.message}`;
}

export function schemaProblems(resource: JsonObject, where: string): string[] {
  const key = `${resource.apiVersion} ${resource.kind}`;
  const kind = KINDS[key];
  if (kind === undefined) return [`${where}: ${key} is not a kind these tests know (add it to KINDS)`];
  const problems: string[] = [];
  try {
    kind.validate(resource);
  } catch (error) {
    problems.push(`${where}: ${(error as Error).message}`);
  }
  const strict = strictValidator(key, kind);
  if (!strict(resource))
    problems.push(...(strict.errors ?? []).map((error) => `${where}: ${describe(error)}`));
  return problems;
}

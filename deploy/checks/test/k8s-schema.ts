/**
 * Test support for deploy-manifests.test.ts: Kubernetes schema checks, offline. kubernetes-models'
 * validators, plus unknown fields checked against the property lists of its type declarations (its
 * schemas accept unknown fields).
 */
import { createRequire } from 'node:module';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import ts from 'typescript';
import type { Json, JsonObject } from './manifests.js';

// ---------------------------------------------------------------------------------------------------
// Schemas: kubernetes-models' validators, plus unknown fields against its type declarations.

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
};

/** Walks an object alongside its kubernetes-models TypeScript type, naming fields the type lacks. */
class FieldChecker {
  private readonly checker: ts.TypeChecker;
  private readonly roots = new Map<string, ts.Type>();

  constructor() {
    const require = createRequire(import.meta.url);
    const files = Object.entries(KINDS).map(
      ([key, kind]) =>
        [key, kind, require.resolve(`kubernetes-models/${kind.module}`).replace(/\.js$/, '.d.ts')] as const,
    );
    const program = ts.createProgram(
      files.map(([, , file]) => file),
      {
        noEmit: true,
        strict: true,
        skipLibCheck: true,
        types: [],
        lib: ['lib.es2022.d.ts'],
        module: ts.ModuleKind.CommonJS,
        moduleResolution: ts.ModuleResolutionKind.Node10,
      },
    );
    this.checker = program.getTypeChecker();
    for (const [key, kind, file] of files) {
      const source = program.getSourceFile(file);
      const module = source === undefined ? undefined : this.checker.getSymbolAtLocation(source);
      const symbol = module && this.checker.getExportsOfModule(module).find((s) => s.name === kind.type);
      if (symbol === undefined) throw new Error(`kubernetes-models: no ${kind.type} in ${file}`);
      this.roots.set(key, this.checker.getDeclaredTypeOfSymbol(symbol));
    }
  }

  unknownFields(key: string, value: JsonObject): string[] {
    const root = this.roots.get(key);
    if (root === undefined) throw new Error(`no type for ${key}`);
    const problems: string[] = [];
    this.walk(value, root, '', problems);
    return problems;
  }

  private walk(value: Json, declared: ts.Type, path: string, problems: string[]): void {
    if (value === null || typeof value !== 'object') return; // scalars: the schema validator checks them
    const type = this.checker.getNonNullableType(declared);
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    const members = type.isUnion() ? type.types : [type];
    const shown = () => this.checker.typeToString(type);
    if (Array.isArray(value)) {
      const list = members.find((member) => this.checker.isArrayType(member));
      const element = list && this.checker.getTypeArguments(list as ts.TypeReference)[0];
      if (element === undefined) {
        problems.push(`${path}: a list where the schema has ${shown()}`);
        return;
      }
      for (const [index, item] of value.entries()) this.walk(item, element, `${path}[${index}]`, problems);
      return;
    }
    const objects = members.filter(
      (member) => (member.flags & ts.TypeFlags.Object) !== 0 && !this.checker.isArrayType(member),
    );
    if (objects.length === 0) {
      problems.push(`${path}: a mapping where the schema has ${shown()}`);
      return;
    }
    for (const [key, child] of Object.entries(value)) {
      const property = objects.map((object) => object.getProperty(key)).find((p) => p !== undefined);
      const next = property
        ? this.checker.getTypeOfSymbol(property)
        : objects
            .map((object) => this.checker.getIndexTypeOfType(object, ts.IndexKind.String))
            .find((t) => t !== undefined);
      if (next === undefined) {
        const known = objects.flatMap((object) => object.getProperties().map((p) => p.name));
        problems.push(`${path}.${key}: unknown field (known: ${known.join(', ')})`);
      } else {
        this.walk(child, next, `${path}.${key}`, problems);
      }
    }
  }
}

let fieldChecker: FieldChecker | undefined;

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
  fieldChecker ??= new FieldChecker();
  problems.push(...fieldChecker.unknownFields(key, resource).map((problem) => `${where}: ${problem}`));
  return problems;
}

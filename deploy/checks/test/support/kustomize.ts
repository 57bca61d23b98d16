/**
 * A kustomize subset: what deploy/k8s uses (resources, components, strategic-merge patches, namespace,
 * labels, images), built the way `kustomize build` does, and an error for everything else, so a new
 * kustomization feature cannot be silently ignored by the checks. No maintained kustomize or
 * strategic-merge implementation exists for Node (kustomize is Go; kubectl embeds it), hence this one.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { asList, asObject, asString, at, clone, isObject, type Json, type JsonObject, rel } from './json.js';
import { loadYaml } from './yaml.js';

const KUSTOMIZATION_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'components',
  'patches',
  'namespace',
  'labels',
  'images',
]);

/** Kinds this subset knows the scope of; the namespace transformer skips cluster-scoped ones. */
const NAMESPACED_KINDS = new Set([
  'ConfigMap',
  'Secret',
  'Service',
  'PersistentVolumeClaim',
  'Pod',
  'Job',
  'CronJob',
  'Deployment',
  'StatefulSet',
  'ServiceAccount',
  'NetworkPolicy',
]);
const CLUSTER_KINDS = new Set([
  'Namespace',
  'PersistentVolume',
  'StorageClass',
  'ClusterRole',
  'ClusterRoleBinding',
]);

/** Lists that strategic merge patches merge element by element, by this key (from the Kubernetes types). */
const LIST_MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
};
/** Lists without a patch strategy: a patch replaces them whole. */
const ATOMIC_LISTS = new Set(['tolerations', 'args', 'command', 'envFrom', 'accessModes', 'drop', 'add']);
/**
 * Lists whose merge key depends on the object holding them (a container's ports merge by containerPort,
 * a Service's by port): only allowed where the base has none, so that no merge key is needed.
 */
const OWNER_KEYED_LISTS = new Set(['ports']);
/** Maps whose merge semantics differ between patch mechanisms: only allowed where the base has none. */
const UNMERGEABLE_MAPS = new Set(['nodeSelector', 'selector', 'matchLabels']);

export interface Build {
  readonly dir: string;
  readonly resources: JsonObject[];
  /** Kustomization files, resources and patches read, to find the manifests no kustomization uses. */
  readonly files: Set<string>;
}

function resourceId(resource: JsonObject): string {
  const metadata = asObject(resource.metadata, 'metadata');
  return `${resource.apiVersion} ${resource.kind} ${metadata.namespace ?? '~'}/${metadata.name}`;
}

/** What each kind of kustomization file is, and the apiVersion kustomize reads it under. */
const KUSTOMIZATION_KINDS = {
  Kustomization: 'kustomize.config.k8s.io/v1beta1',
  Component: 'kustomize.config.k8s.io/v1alpha1',
} as const;
type KustomizationKind = keyof typeof KUSTOMIZATION_KINDS;

export function kustomize(dir: string): Build {
  const files = new Set<string>();
  return { dir, resources: accumulate(dir, 'Kustomization', [], files), files };
}

/**
 * Builds the kustomization in `dir` as kustomize's accumulateTarget does: its resources, then its
 * components, then its own transformers. A Kustomization starts from nothing; a Component starts from
 * what the kustomization listing it has accumulated so far, so its patches reach those resources and
 * the listing kustomization's transformers (its namespace, say) reach the Component's resources.
 */
function accumulate(
  dir: string,
  kind: KustomizationKind,
  accumulated: JsonObject[],
  files: Set<string>,
): JsonObject[] {
  const candidates = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].filter((name) =>
    existsSync(join(dir, name)),
  );
  if (candidates.length !== 1)
    throw new Error(`${rel(dir)}: expected one kustomization file, found ${candidates}`);
  const file = join(dir, candidates[0]!);
  const documents = loadYaml(file);
  if (documents.length !== 1) throw new Error(`${rel(file)}: expected one document`);
  const kustomization = asObject(documents[0], rel(file));
  for (const field of Object.keys(kustomization)) {
    if (!KUSTOMIZATION_FIELDS.has(field)) {
      throw new Error(
        `${rel(file)}: kustomization field "${field}" is not implemented by this test's kustomize subset`,
      );
    }
  }
  // kustomize refuses a Component listed under resources, and a Kustomization under components.
  expect(kustomization.kind, rel(file)).toBe(kind);
  expect(kustomization.apiVersion, rel(file)).toBe(KUSTOMIZATION_KINDS[kind]);

  files.add(file);
  let resources: JsonObject[] = [...accumulated];
  for (const entry of asList(kustomization.resources ?? [], `${rel(file)} resources`)) {
    const path = asString(entry, `${rel(file)} resources`);
    if (/^[a-z]+:\/\/|\?ref=|^github\.com\//.test(path))
      throw new Error(`${rel(file)}: remote resource ${path}`);
    const target = resolve(dir, path);
    if (statSync(target).isDirectory()) {
      resources.push(...accumulate(target, 'Kustomization', [], files));
    } else {
      files.add(target);
      resources.push(...loadYaml(target).map((document) => asObject(document, rel(target))));
    }
  }
  for (const entry of asList(kustomization.components ?? [], `${rel(file)} components`)) {
    resources = accumulate(
      resolve(dir, asString(entry, `${rel(file)} components`)),
      'Component',
      resources,
      files,
    );
  }
  const seen = new Set<string>();
  for (const resource of resources) {
    const id = resourceId(resource);
    if (seen.has(id)) throw new Error(`${rel(file)}: ${id} appears twice`);
    seen.add(id);
  }

  // Transformers in kustomize's order: patches, namespace, labels, images.
  for (const [index, entry] of asList(kustomization.patches ?? [], 'patches').entries()) {
    const where = `${rel(file)} patches[${index}]`;
    const spec = asObject(entry, where);
    for (const key of Object.keys(spec)) {
      if (!['path', 'patch', 'target'].includes(key))
        throw new Error(`${where}: "${key}" is not implemented`);
    }
    let documents: Json[];
    if (typeof spec.path === 'string') {
      const patchFile = resolve(dir, spec.path);
      files.add(patchFile);
      documents = loadYaml(patchFile);
    } else {
      documents = parseAllDocuments(asString(spec.patch, `${where}.patch`)).map((d) => d.toJS() as Json);
    }
    if (documents.length !== 1) throw new Error(`${where}: expected one patch document`);
    const patch = documents[0];
    if (Array.isArray(patch))
      throw new Error(`${where}: JSON 6902 patches are not implemented by this subset`);
    const patchObject = asObject(patch, where);
    const target = spec.target === undefined ? undefined : asObject(spec.target, `${where}.target`);
    for (const key of Object.keys(target ?? {})) {
      if (!['kind', 'name', 'version', 'group'].includes(key)) {
        throw new Error(`${where}: patch target field "${key}" is not implemented`);
      }
    }
    const matches = (resource: JsonObject) => {
      const [group, version] = splitApiVersion(asString(resource.apiVersion, 'apiVersion'));
      const name = at(resource, 'metadata', 'name');
      if (target !== undefined) {
        return (
          (target.kind === undefined || target.kind === resource.kind) &&
          (target.name === undefined || target.name === name) &&
          (target.group === undefined || target.group === group) &&
          (target.version === undefined || target.version === version)
        );
      }
      // A patch without a namespace matches the resource in whichever namespace it is (kustomize v5.5,
      // `kubectl kustomize` of kubectl 1.32, builds the TLS overlay so into any namespace); with one,
      // the namespaces must agree.
      const patchNamespace = at(patchObject, 'metadata', 'namespace');
      return (
        patchObject.apiVersion === resource.apiVersion &&
        patchObject.kind === resource.kind &&
        at(patchObject, 'metadata', 'name') === name &&
        (patchNamespace === undefined || patchNamespace === at(resource, 'metadata', 'namespace'))
      );
    };
    const hits = resources.filter(matches);
    if (hits.length === 0) throw new Error(`${where}: the patch matches no resource`);
    if (target === undefined && hits.length > 1)
      throw new Error(`${where}: the patch matches several resources`);
    resources = resources.map((resource) =>
      matches(resource) ? strategicMerge(resource, patchObject, where) : resource,
    );
  }

  if (kustomization.namespace !== undefined) {
    const namespace = asString(kustomization.namespace, 'namespace');
    for (const resource of resources) {
      const kind = asString(resource.kind, 'kind');
      if (CLUSTER_KINDS.has(kind)) continue;
      if (!NAMESPACED_KINDS.has(kind))
        throw new Error(`${rel(file)}: scope of kind ${kind} not known to this subset`);
      asObject(resource.metadata, 'metadata').namespace = namespace;
    }
  }

  for (const [index, entry] of asList(kustomization.labels ?? [], 'labels').entries()) {
    const where = `${rel(file)} labels[${index}]`;
    const spec = asObject(entry, where);
    for (const key of Object.keys(spec)) {
      if (
        key !== 'pairs' &&
        !(['includeSelectors', 'includeTemplates'].includes(key) && spec[key] === false)
      ) {
        throw new Error(`${where}: "${key}: ${JSON.stringify(spec[key])}" is not implemented by this subset`);
      }
    }
    // Without includeSelectors/includeTemplates: the resources' own metadata.labels only.
    for (const resource of resources) {
      const metadata = asObject(resource.metadata, 'metadata');
      metadata.labels = {
        ...asObject(metadata.labels ?? {}, 'labels'),
        ...asObject(spec.pairs, `${where}.pairs`),
      };
    }
  }

  for (const [index, entry] of asList(kustomization.images ?? [], 'images').entries()) {
    const where = `${rel(file)} images[${index}]`;
    const spec = asObject(entry, where);
    for (const key of Object.keys(spec)) {
      if (!['name', 'newName', 'newTag', 'digest'].includes(key))
        throw new Error(`${where}: "${key}" is not implemented`);
    }
    const name = asString(spec.name, `${where}.name`);
    for (const resource of resources) {
      forEachContainer(resource, (container) => {
        const image = splitImage(asString(container.image, 'image'));
        if (image.name !== name) return;
        const newName = typeof spec.newName === 'string' ? spec.newName : image.name;
        if (typeof spec.digest === 'string') container.image = `${newName}@${spec.digest}`;
        else if (spec.newTag !== undefined) container.image = `${newName}:${String(spec.newTag)}`;
        else
          container.image = `${newName}${image.tag ? `:${image.tag}` : ''}${image.digest ? `@${image.digest}` : ''}`;
      });
    }
  }
  return resources;
}

function splitApiVersion(apiVersion: string): [group: string, version: string] {
  const slash = apiVersion.indexOf('/');
  return slash === -1 ? ['', apiVersion] : [apiVersion.slice(0, slash), apiVersion.slice(slash + 1)];
}

export function strategicMerge(base: JsonObject, patch: JsonObject, where: string): JsonObject {
  const result = clone(base);
  for (const [key, value] of Object.entries(patch)) {
    const path = `${where}.${key}`;
    if (key.startsWith('$')) throw new Error(`${path}: patch directives are not implemented by this subset`);
    const current = result[key];
    if (value === null) {
      delete result[key];
    } else if (Array.isArray(value)) {
      result[key] = mergeList(key, current, value, path);
    } else if (isObject(value)) {
      if (current !== undefined && UNMERGEABLE_MAPS.has(key)) {
        throw new Error(`${path}: patching a ${key} the base already has is not implemented by this subset`);
      }
      result[key] = strategicMerge(isObject(current) ? current : {}, value, path);
    } else {
      result[key] = value;
    }
  }
  return result;
}

function mergeList(key: string, current: Json | undefined, patch: Json[], where: string): Json[] {
  const mergeKey = LIST_MERGE_KEYS[key];
  if (mergeKey === undefined) {
    if (OWNER_KEYED_LISTS.has(key)) {
      if (current !== undefined)
        throw new Error(`${where}: patching a ${key} list the base already has is not implemented`);
      return clone(patch);
    }
    if (!ATOMIC_LISTS.has(key))
      throw new Error(`${where}: how a patch merges the list "${key}" is not implemented`);
    return clone(patch);
  }
  const result = current === undefined ? [] : clone(asList(current, where));
  for (const item of patch) {
    const element = asObject(item, where);
    const id = element[mergeKey];
    if (typeof id !== 'string') throw new Error(`${where}: element without its merge key "${mergeKey}"`);
    const index = result.findIndex((existing) => isObject(existing) && existing[mergeKey] === id);
    if (index === -1) result.push(strategicMerge({}, element, `${where}[${id}]`));
    else result[index] = strategicMerge(asObject(result[index], where), element, `${where}[${id}]`);
  }
  return result;
}

function forEachContainer(value: Json, visit: (container: JsonObject) => void): void {
  if (Array.isArray(value)) {
    for (const item of value) forEachContainer(item, visit);
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      if ((key === 'containers' || key === 'initContainers') && Array.isArray(child)) {
        for (const container of child) if (isObject(container)) visit(container);
      } else {
        forEachContainer(child, visit);
      }
    }
  }
}

export function splitImage(reference: string): {
  name: string;
  tag: string | undefined;
  digest: string | undefined;
} {
  const atSign = reference.indexOf('@');
  const digest = atSign === -1 ? undefined : reference.slice(atSign + 1);
  const rest = atSign === -1 ? reference : reference.slice(0, atSign);
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/'))
    return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
  return { name: rest, tag: undefined, digest };
}

/**
 * The deployment files under deploy/, validated offline: no cluster, no kubectl, no kustomize binary and
 * no Docker are involved. What is checked:
 *
 * - every YAML file under deploy/k8s parses, and means the same under YAML 1.1 (kubectl) and 1.2;
 * - each kustomization builds, with a small kustomize subset (support/manifests.ts: resources, patches
 *   as strategic-merge patches, namespace, labels, images) that throws on anything it does not implement;
 * - every object of every build (and every standalone manifest) passes the Kubernetes schema of
 *   `kubernetes-models`, and has no field that the models' own type declarations do not know (their
 *   schemas accept unknown fields, so those are checked against the TypeScript property lists;
 *   support/k8s-schema.ts);
 * - the project's rules: Job restart policies, whole GPUs in limits only, Services that select pods,
 *   workers that connect to an existing Service and port, the token only from a Secret reference, images
 *   pinned by tag, probes on the coordinator, and a configuration (flags and every environment variable
 *   set) that the real `callosum` program reads and accepts;
 * - the Dockerfiles' pins, and the coordinator start script's resume decision (run with a stand-in node).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { createProgram } from '@callosum/cli';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { schemaProblems } from './k8s-schema.js';
import {
  asList,
  asObject,
  asString,
  at,
  type Build,
  clone,
  filesUnder,
  isObject,
  type Json,
  type JsonObject,
  kustomize,
  loadYaml,
  REPO,
  rel,
  splitImage,
  strategicMerge,
} from './manifests.js';

const K8S = join(REPO, 'deploy', 'k8s');
const DOCKER = join(REPO, 'deploy', 'docker');
const OVERLAYS = ['overlays/cpu', 'overlays/gpu', 'overlays/gpu-tls'];
const BUILDS = ['base', ...OVERLAYS];
const TOKEN_SECRET = { name: 'callosum-token', key: 'token' };

// ---------------------------------------------------------------------------------------------------
// The real CLI: which commands, flags and environment variables exist, and what it makes of a container.

interface Cli {
  readonly commands: ReadonlyMap<string, Command>;
  readonly envVars: ReadonlyMap<string, ReadonlySet<string>>;
  readonly allEnvVars: ReadonlySet<string>;
}

function describeCli(): Cli {
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
async function parseWithCli(
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

// ---------------------------------------------------------------------------------------------------
// The images: ENTRYPOINT, the coordinator start script, base image pins.

interface Dockerfile {
  readonly file: string;
  readonly text: string;
  readonly stages: { from: string; alias: string | undefined; lines: string[] }[];
}

function readDockerfile(name: string): Dockerfile {
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

interface ImageFacts {
  /** argv before the container's args when it sets no command: the image's ENTRYPOINT. */
  readonly entrypoint: string[];
  /** Commands installed in the image that run `callosum <command> "$@"`, by name and path. */
  readonly wrappers: ReadonlyMap<string, string>;
}

function imageFacts(dockerfile: Dockerfile): ImageFacts {
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

// ---------------------------------------------------------------------------------------------------
// Project rules on a set of objects (one build, or one standalone manifest).

interface PodTemplate {
  readonly owner: JsonObject;
  readonly where: string;
  readonly labels: JsonObject;
  readonly spec: JsonObject;
}

function podTemplates(resource: JsonObject, where: string): PodTemplate[] {
  if (resource.kind === 'Job') {
    const template = asObject(at(resource, 'spec', 'template'), `${where} template`);
    return [
      {
        owner: resource,
        where,
        labels: asObject(at(template, 'metadata', 'labels') ?? {}, where),
        spec: asObject(template.spec, where),
      },
    ];
  }
  if (resource.kind === 'Pod') {
    return [
      {
        owner: resource,
        where,
        labels: asObject(at(resource, 'metadata', 'labels') ?? {}, where),
        spec: asObject(resource.spec, where),
      },
    ];
  }
  if (['Deployment', 'StatefulSet', 'DaemonSet', 'CronJob', 'ReplicaSet'].includes(String(resource.kind))) {
    throw new Error(`${where}: the rules below do not cover ${resource.kind} yet`);
  }
  return [];
}

interface CallosumContainer {
  readonly where: string;
  readonly pod: PodTemplate;
  readonly container: JsonObject;
  readonly command: string;
  readonly args: string[];
  readonly env: Record<string, string>;
  readonly options: Record<string, unknown>;
}

/** Variables that hold a secret (not a path to one, like CALLOSUM_TOKEN_FILE). */
const isSecretName = (name: string) => /TOKEN|SECRET|PASSWORD/i.test(name) && !/_FILE$/.test(name);

const isCallosumImage = (image: string) => /(^|\/)callosum(-gpu)?$/.test(splitImage(image).name);

function imageOf(container: JsonObject): string {
  return asString(container.image, 'image');
}

async function checkRules(
  resources: JsonObject[],
  label: string,
  cli: Cli,
  facts: ImageFacts,
): Promise<string[]> {
  const problems: string[] = [];
  const problem = (text: string) => problems.push(`${label}: ${text}`);
  const nameOf = (resource: JsonObject) => `${resource.kind}/${at(resource, 'metadata', 'name')}`;
  const namespaceOf = (resource: JsonObject) => String(at(resource, 'metadata', 'namespace') ?? 'default');
  const byKind = (kind: string) => resources.filter((resource) => resource.kind === kind);

  // No secrets in manifests: no Secret objects, no literal values for secret-looking variables, and no
  // long hex string anywhere (what `openssl rand -hex 32` makes).
  for (const secret of byKind('Secret'))
    problem(`${nameOf(secret)}: a Secret in the manifests (create it with kubectl)`);
  const scan = (value: Json, path: string) => {
    if (typeof value === 'string' && /^[0-9a-f]{32,}$/i.test(value))
      problem(`${path}: looks like an inlined secret`);
    if (Array.isArray(value)) for (const [index, item] of value.entries()) scan(item, `${path}[${index}]`);
    if (isObject(value)) for (const [key, child] of Object.entries(value)) scan(child, `${path}.${key}`);
  };
  for (const resource of resources) scan(resource, nameOf(resource));
  for (const configMap of byKind('ConfigMap')) {
    for (const key of Object.keys(asObject(configMap.data ?? {}, 'data'))) {
      if (isSecretName(key)) problem(`${nameOf(configMap)}: ${key} belongs in a Secret`);
    }
  }

  const templates = resources.flatMap((resource) => podTemplates(resource, nameOf(resource)));
  const configMaps = new Map(
    byKind('ConfigMap').map((c) => [`${namespaceOf(c)}/${at(c, 'metadata', 'name')}`, c]),
  );
  const callosum: CallosumContainer[] = [];
  /** Every container that runs callosum, with the command, whether or not the CLI accepted its settings. */
  const loaders: { container: JsonObject; command: string; where: string }[] = [];

  for (const pod of templates) {
    const where = pod.where;
    if (pod.owner.kind === 'Job') {
      const policy = pod.spec.restartPolicy;
      if (policy !== 'OnFailure' && policy !== 'Never')
        problem(`${where}: restartPolicy ${policy}, not OnFailure/Never`);
      if (typeof at(pod.owner, 'spec', 'backoffLimit') !== 'number') problem(`${where}: no backoffLimit`);
    }
    if (at(pod.spec, 'securityContext', 'runAsNonRoot') !== true)
      problem(`${where}: pods run with runAsNonRoot`);
    // A Service named callosum-* would inject CALLOSUM_*_SERVICE_HOST/PORT variables into the CLI's namespace.
    const serviceLinks = byKind('Service').some((s) =>
      String(at(s, 'metadata', 'name')).startsWith('callosum'),
    );
    if (serviceLinks && pod.spec.enableServiceLinks !== false)
      problem(`${where}: set enableServiceLinks: false`);

    for (const [index, item] of asList(pod.spec.containers, `${where} containers`).entries()) {
      const container = asObject(item, where);
      const cwhere = `${where} container ${container.name ?? index}`;
      const image = imageOf(container);
      const { tag, digest } = splitImage(image);
      if (digest === undefined && (tag === undefined || tag === 'latest'))
        problem(`${cwhere}: image ${image} is not pinned by a tag`);
      for (const section of ['requests', 'limits']) {
        for (const resource of ['cpu', 'memory']) {
          if (at(container, 'resources', section, resource) === undefined)
            problem(`${cwhere}: no ${section}.${resource}`);
        }
      }
      for (const [name, quantity] of Object.entries(
        asObject(at(container, 'resources', 'requests') ?? {}, cwhere),
      )) {
        if (/gpu/i.test(name))
          problem(`${cwhere}: GPU ${name} in requests (${quantity}); GPUs go in limits only`);
      }
      for (const [name, quantity] of Object.entries(
        asObject(at(container, 'resources', 'limits') ?? {}, cwhere),
      )) {
        if (
          /gpu/i.test(name) &&
          !(/^[1-9]\d*$/.test(String(quantity)) && Number.isInteger(Number(quantity)))
        ) {
          problem(`${cwhere}: GPU limit ${name}: ${quantity} is not a whole number of GPUs`);
        }
      }
      for (const entry of asList(container.env ?? [], cwhere)) {
        const variable = asObject(entry, cwhere);
        if (isSecretName(String(variable.name)) && variable.value !== undefined) {
          problem(`${cwhere}: ${variable.name} has a literal value; use valueFrom.secretKeyRef`);
        }
      }
      if (!isCallosumImage(image)) continue;

      // What the container runs: the image's ENTRYPOINT plus args, or a wrapper from the image.
      const command =
        container.command === undefined ? undefined : asList(container.command, cwhere).map(String);
      const args = asList(container.args ?? [], cwhere).map(String);
      let sub: string;
      let flags: string[];
      if (command === undefined) {
        [sub = '', ...flags] = args;
      } else if (command.length === 1 && facts.wrappers.has(command[0]!)) {
        sub = facts.wrappers.get(command[0]!)!;
        flags = args;
      } else {
        problem(
          `${cwhere}: command ${JSON.stringify(command)} is neither the image's ENTRYPOINT nor its wrapper`,
        );
        continue;
      }
      if (!cli.commands.has(sub)) {
        problem(`${cwhere}: "callosum ${sub}" is not a command`);
        continue;
      }
      if (flags.some((flag) => /^--(token|insecure)\b/.test(flag)))
        problem(`${cwhere}: --token/--insecure in args`);
      loaders.push({ container, command: sub, where: cwhere });

      // The environment the container gets: envFrom ConfigMaps, then env (which wins).
      const env: Record<string, string> = {};
      const sources = new Map<string, string>();
      for (const entry of asList(container.envFrom ?? [], cwhere)) {
        const from = asObject(entry, cwhere);
        if (from.secretRef !== undefined || from.prefix !== undefined)
          problem(`${cwhere}: envFrom secretRef/prefix`);
        const name = asString(at(from, 'configMapRef', 'name'), `${cwhere} envFrom`);
        const configMap = configMaps.get(`${namespaceOf(pod.owner)}/${name}`);
        if (configMap === undefined) {
          problem(`${cwhere}: envFrom ConfigMap ${name} is not in the build`);
          continue;
        }
        for (const [key, value] of Object.entries(asObject(configMap.data ?? {}, name))) {
          env[key] = String(value);
          sources.set(key, `ConfigMap ${name}`);
        }
      }
      let tokenFromSecret = false;
      for (const entry of asList(container.env ?? [], cwhere)) {
        const variable = asObject(entry, cwhere);
        const name = asString(variable.name, cwhere);
        const secretRef = at(variable, 'valueFrom', 'secretKeyRef');
        if (name === 'CALLOSUM_TOKEN' && isObject(secretRef)) {
          tokenFromSecret = secretRef.name === TOKEN_SECRET.name && secretRef.key === TOKEN_SECRET.key;
        }
        env[name] = typeof variable.value === 'string' ? variable.value : `stand-in-for-${name}`;
        sources.set(name, 'env');
        if (!cli.envVars.get(sub)?.has(name))
          problem(`${cwhere}: env ${name} is not read by callosum ${sub}`);
      }
      if (!tokenFromSecret) {
        problem(
          `${cwhere}: CALLOSUM_TOKEN must come from secretKeyRef ${TOKEN_SECRET.name}/${TOKEN_SECRET.key}`,
        );
      }
      if ('CALLOSUM_INSECURE' in env) problem(`${cwhere}: CALLOSUM_INSECURE is set`);
      for (const [name, source] of sources) {
        if (!cli.allEnvVars.has(name))
          problem(`${cwhere}: ${name} (${source}) is not an environment variable callosum reads`);
      }
      try {
        const options = await parseWithCli(sub, flags, env);
        callosum.push({ where: cwhere, pod, container, command: sub, args: flags, env, options });
      } catch (error) {
        problem(`${cwhere}: ${(error as Error).message}`);
      }
    }
  }

  // Every ConfigMap key is read by a command of some container that loads it.
  for (const configMap of byKind('ConfigMap')) {
    const name = at(configMap, 'metadata', 'name');
    const readers = loaders.filter((c) =>
      asList(c.container.envFrom ?? [], c.where).some((from) => at(from, 'configMapRef', 'name') === name),
    );
    for (const key of Object.keys(asObject(configMap.data ?? {}, 'data'))) {
      if (!readers.some((reader) => cli.envVars.get(reader.command)?.has(key))) {
        problem(`${nameOf(configMap)}: ${key} is read by no command that loads it`);
      }
    }
  }

  // Services select pods.
  for (const service of byKind('Service')) {
    const selector = asObject(at(service, 'spec', 'selector') ?? {}, nameOf(service));
    const selected = templates.filter(
      (pod) =>
        namespaceOf(pod.owner) === namespaceOf(service) &&
        Object.entries(selector).every(([key, value]) => pod.labels[key] === value),
    );
    if (Object.keys(selector).length === 0 || selected.length === 0) {
      problem(`${nameOf(service)}: its selector ${JSON.stringify(selector)} matches no pod template`);
    }
  }

  const coordinators = callosum.filter((c) => c.command === 'coordinator');
  const workers = callosum.filter((c) => c.command === 'worker');
  for (const c of callosum) {
    if (c.command !== 'worker' && JSON.stringify(c.container.resources ?? {}).includes('gpu')) {
      problem(`${c.where}: GPUs for a ${c.command}; only workers compute`);
    }
  }
  const count = (command: string) => loaders.filter((loader) => loader.command === command).length;
  if (loaders.length > 0) {
    if (count('coordinator') !== 1)
      problem(`expected one coordinator container, found ${count('coordinator')}`);
    if (count('worker') !== 1) problem(`expected one workers template, found ${count('worker')}`);
  }
  const coordinator = coordinators[0];
  const worker = workers[0];

  if (coordinator !== undefined) {
    const port = Number(coordinator.options.port);
    const portNumber = (value: Json | undefined) => {
      if (typeof value === 'number') return value;
      const named = asList(coordinator.container.ports ?? [], coordinator.where).find(
        (p) => at(p, 'name') === value,
      );
      return at(named, 'containerPort');
    };
    const declared = asList(coordinator.container.ports ?? [], coordinator.where).map((p) =>
      at(p, 'containerPort'),
    );
    if (!declared.includes(port))
      problem(`${coordinator.where}: listens on ${port}, declares ports ${declared}`);
    if (coordinator.options.host !== '0.0.0.0')
      problem(`${coordinator.where}: --host ${coordinator.options.host}`);
    // With TLS the same port serves HTTPS; with mutual TLS the kubelet, which has no client
    // certificate, cannot complete a handshake at all, so only TCP probes can work.
    const tls = coordinator.options.tlsCert !== undefined;
    const mutualTls = coordinator.options.tlsClientCa !== undefined;
    for (const [probe, path] of [
      ['readinessProbe', '/readyz'],
      ['livenessProbe', '/healthz'],
      ['startupProbe', undefined],
    ] as const) {
      const settings = at(coordinator.container, probe);
      if (settings === undefined && path === undefined) continue;
      const get = at(settings, 'httpGet');
      if (mutualTls) {
        if (get !== undefined || portNumber(at(settings, 'tcpSocket', 'port')) !== port) {
          problem(`${coordinator.where}: with mutual TLS ${probe} must be a tcpSocket probe on ${port}`);
        }
        continue;
      }
      if ((path !== undefined && at(get, 'path') !== path) || portNumber(at(get, 'port')) !== port) {
        problem(`${coordinator.where}: ${probe} must GET ${path ?? 'a path'} on port ${port}`);
      }
      if ((at(get, 'scheme') ?? 'HTTP') !== (tls ? 'HTTPS' : 'HTTP')) {
        problem(`${coordinator.where}: ${probe} must use ${tls ? 'HTTPS (TLS is on)' : 'HTTP'}`);
      }
    }
    // The run directory is on a PersistentVolumeClaim that the build has.
    const runDir = String(coordinator.options.resume ?? coordinator.options.out ?? '');
    const volumes = asList(coordinator.pod.spec.volumes ?? [], coordinator.where);
    const onClaim = asList(coordinator.container.volumeMounts ?? [], coordinator.where).some((mount) => {
      const mountPath = String(at(mount, 'mountPath'));
      const volume = volumes.find((v) => at(v, 'name') === at(mount, 'name'));
      const claim = at(volume, 'persistentVolumeClaim', 'claimName');
      return (
        (runDir === mountPath || runDir.startsWith(`${mountPath.replace(/\/$/, '')}/`)) &&
        byKind('PersistentVolumeClaim').some((pvc) => at(pvc, 'metadata', 'name') === claim)
      );
    });
    if (!onClaim)
      problem(`${coordinator.where}: run directory "${runDir}" is not on a PersistentVolumeClaim`);
  }

  if (worker !== undefined) {
    const job = worker.pod.owner;
    const parallelism = at(job, 'spec', 'parallelism');
    if (
      job.kind !== 'Job' ||
      parallelism !== at(job, 'spec', 'completions') ||
      typeof parallelism !== 'number'
    ) {
      problem(`${worker.where}: workers run as a Job with parallelism = completions`);
    }
    if (coordinator !== undefined && typeof parallelism === 'number') {
      const { minWorkers, maxWorkers } = coordinator.options;
      if (Number(minWorkers) > parallelism)
        problem(`min-workers ${minWorkers} > ${parallelism} workers: never starts`);
      if (maxWorkers !== undefined && Number(maxWorkers) < parallelism)
        problem(`max-workers ${maxWorkers} < ${parallelism}`);
    }
    // --connect names a Service of the build, on its port, which leads to the coordinator's port.
    const url = new URL(String(worker.options.connect));
    const [host = '', namespace = namespaceOf(job)] = url.hostname.split('.');
    const service = byKind('Service').find(
      (s) => at(s, 'metadata', 'name') === host && namespaceOf(s) === namespace,
    );
    const coordinatorTls = coordinator?.options.tlsCert !== undefined;
    if (url.protocol !== (coordinatorTls ? 'wss:' : 'ws:')) {
      problem(
        `${worker.where}: --connect ${url}, but the coordinator serves ${coordinatorTls ? 'wss' : 'ws'}://`,
      );
    }
    if (coordinatorTls && worker.options.tlsCa === undefined) {
      problem(`${worker.where}: set CALLOSUM_TLS_CA to verify the coordinator's certificate`);
    }
    if (coordinator?.options.tlsClientCa !== undefined && worker.options.tlsCert === undefined) {
      problem(`${worker.where}: mutual TLS needs a worker certificate (CALLOSUM_TLS_CERT, CALLOSUM_TLS_KEY)`);
    }
    if (service === undefined) {
      problem(`${worker.where}: --connect ${url}: no Service ${host} in namespace ${namespace}`);
    } else {
      const servicePort = asList(at(service, 'spec', 'ports'), nameOf(service)).find(
        (p) => at(p, 'port') === Number(url.port || 80),
      );
      if (servicePort === undefined) problem(`${worker.where}: Service ${host} has no port ${url.port}`);
      if (coordinator !== undefined && servicePort !== undefined) {
        const target = at(servicePort, 'targetPort') ?? at(servicePort, 'port');
        const ports = asList(coordinator.container.ports ?? [], coordinator.where);
        const resolved =
          typeof target === 'number'
            ? target
            : at(
                ports.find((p) => at(p, 'name') === target),
                'containerPort',
              );
        if (resolved !== Number(coordinator.options.port)) {
          problem(
            `Service ${host} targets ${target}, the coordinator listens on ${coordinator.options.port}`,
          );
        }
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------

const builds = new Map<string, Build>();
function built(dir: string): Build {
  let build = builds.get(dir);
  if (build === undefined) {
    build = kustomize(join(K8S, dir));
    builds.set(dir, build);
  }
  return build;
}

const yamlFiles = filesUnder(K8S, (name) => /\.ya?ml$/.test(name));

describe('deploy/k8s, validated offline (no cluster, no kubectl)', () => {
  it('every YAML file parses, the same under YAML 1.1 and 1.2', () => {
    expect(yamlFiles.length).toBeGreaterThan(5);
    for (const file of yamlFiles) expect(loadYaml(file).length, rel(file)).toBeGreaterThan(0);
  });

  it.each(BUILDS)('%s builds with the kustomize subset', (dir) => {
    const build = built(dir);
    expect(build.resources.map((r) => `${r.kind}/${at(r, 'metadata', 'name')}`).sort()).toEqual([
      'ConfigMap/callosum-config',
      'Job/callosum-coordinator',
      'Job/callosum-workers',
      'PersistentVolumeClaim/callosum-run',
      'Service/callosum-coordinator',
    ]);
  });

  it('every YAML file is a kustomization, used by one, or a standalone manifest that validates', () => {
    const used = new Set(BUILDS.flatMap((dir) => [...built(dir).files]));
    const standalone = yamlFiles.filter((file) => !used.has(file));
    expect(standalone.map(rel)).toEqual(['deploy/k8s/tools/run-reader.yaml']);
  });

  it.each(BUILDS)('%s: every object passes the Kubernetes schema and has no unknown field', (dir) => {
    const problems = built(dir).resources.flatMap((r) =>
      schemaProblems(r, `${dir} ${r.kind}/${at(r, 'metadata', 'name')}`),
    );
    expect(problems).toEqual([]);
  });

  it('the standalone manifests pass the Kubernetes schema and have no unknown field', () => {
    const file = join(K8S, 'tools', 'run-reader.yaml');
    const problems = loadYaml(file).flatMap((document) =>
      schemaProblems(asObject(document, rel(file)), rel(file)),
    );
    expect(problems).toEqual([]);
  });

  it.each(BUILDS)('%s: project rules hold, checked against the real callosum program', async (dir) => {
    const cli = describeCli();
    const facts = imageFacts(readDockerfile('Dockerfile'));
    expect(await checkRules(built(dir).resources, dir, cli, facts)).toEqual([]);
  });

  it('the standalone manifests follow the same rules', async () => {
    const file = join(K8S, 'tools', 'run-reader.yaml');
    const resources = loadYaml(file).map((document) => asObject(document, rel(file)));
    const problems = await checkRules(
      resources,
      rel(file),
      describeCli(),
      imageFacts(readDockerfile('Dockerfile')),
    );
    expect(problems).toEqual([]);
    // It mounts the claim the overlays create.
    expect(at(resources[0], 'spec', 'volumes', 0, 'persistentVolumeClaim', 'claimName')).toBe('callosum-run');
  });

  it('the CLI declares the token variables the manifests rely on', () => {
    const cli = describeCli();
    for (const command of ['coordinator', 'worker']) {
      expect([...(cli.envVars.get(command) ?? [])]).toEqual(
        expect.arrayContaining(['CALLOSUM_TOKEN', 'CALLOSUM_TOKEN_FILE']),
      );
    }
    expect([...(cli.envVars.get('coordinator') ?? [])]).toContain('CALLOSUM_INSECURE');
  });

  it('the overlays set what they promise: namespace, images, worker count, GPUs', () => {
    const find = (dir: string, kind: string, name: string) =>
      built(dir).resources.find((r) => r.kind === kind && at(r, 'metadata', 'name') === name)!;
    const image = (job: JsonObject) => at(job, 'spec', 'template', 'spec', 'containers', 0, 'image');
    for (const dir of OVERLAYS) {
      for (const resource of built(dir).resources) {
        expect(at(resource, 'metadata', 'namespace'), dir).toBe('callosum');
        expect(at(resource, 'metadata', 'labels', 'app.kubernetes.io/part-of'), dir).toBe('callosum');
      }
    }
    const gpuWorkers = find('overlays/gpu', 'Job', 'callosum-workers');
    expect(image(gpuWorkers)).toBe('registry.example.com/callosum-gpu:0.1.0');
    expect(image(find('overlays/gpu', 'Job', 'callosum-coordinator'))).toBe(
      'registry.example.com/callosum:0.1.0',
    );
    const worker = at(gpuWorkers, 'spec', 'template', 'spec', 'containers', 0);
    expect(at(worker, 'resources', 'limits', 'nvidia.com/gpu')).toBe(1);
    // The patch merged into the base container rather than replacing it.
    expect(at(worker, 'args')).toEqual(['worker', '--connect', 'ws://callosum-coordinator:7070']);
    expect(at(worker, 'env', 0, 'name')).toBe('CALLOSUM_TOKEN');
    expect(at(gpuWorkers, 'spec', 'template', 'spec', 'tolerations', 0, 'key')).toBe('nvidia.com/gpu');
    expect(at(find('overlays/gpu', 'ConfigMap', 'callosum-config'), 'data', 'CALLOSUM_BACKEND')).toBe(
      'tensorflow',
    );
    const cpuWorkers = find('overlays/cpu', 'Job', 'callosum-workers');
    expect(image(cpuWorkers)).toBe('callosum:0.1.0');
    expect(JSON.stringify(cpuWorkers)).not.toContain('gpu');
    expect(at(cpuWorkers, 'spec', 'parallelism')).toBe(4);
    expect(at(find('overlays/cpu', 'ConfigMap', 'callosum-config'), 'data', 'CALLOSUM_MIN_WORKERS')).toBe(
      '4',
    );
    // TLS on top of the GPU overlay: probes over HTTPS on the same paths, wss:// for the workers, and the
    // certificate volumes next to the run volume.
    const tlsCoordinator = at(
      find('overlays/gpu-tls', 'Job', 'callosum-coordinator'),
      'spec',
      'template',
      'spec',
    );
    expect(at(tlsCoordinator, 'containers', 0, 'readinessProbe', 'httpGet')).toEqual({
      path: '/readyz',
      port: 'callosum',
      scheme: 'HTTPS',
    });
    expect(asList(at(tlsCoordinator, 'volumes'), 'volumes').map((v) => at(v, 'name'))).toEqual([
      'run',
      'tls',
    ]);
    const tlsWorkers = find('overlays/gpu-tls', 'Job', 'callosum-workers');
    expect(image(tlsWorkers)).toBe('registry.example.com/callosum-gpu:0.1.0');
    expect(at(tlsWorkers, 'spec', 'template', 'spec', 'containers', 0, 'args')).toEqual([
      'worker',
      '--connect',
      'wss://callosum-coordinator:7070',
    ]);
  });
});

describe('the offline checks themselves catch mistakes', () => {
  const job = (container: JsonObject): JsonObject => ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: 'x' },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [container] } } },
  });

  it('a misspelled field, a wrong type and a bad enum value are reported', () => {
    expect(schemaProblems(job({ name: 'a', image: 'a:1' }), 'ok')).toEqual([]);
    expect(schemaProblems(job({ name: 'a', image: 'a:1', imagePullPolicyy: 'Always' }), 'x').join()).toMatch(
      /containers\[0\]\.imagePullPolicyy: unknown field/,
    );
    expect(schemaProblems(job({ name: 'a', resources: { limits: { memory: 'lots' } } }), 'x').join()).toMatch(
      /quantity/,
    );
    const bad = job({ name: 'a' });
    (at(bad, 'spec', 'template', 'spec') as JsonObject).restartPolicy = 'Always-ish';
    expect(schemaProblems(bad, 'x').join()).toMatch(/restartPolicy/);
  });

  it('a strategic merge merges containers by name, replaces tolerations, and refuses what it does not know', () => {
    const base = job({ name: 'w', image: 'a:1', args: ['worker'], resources: { limits: { cpu: '1' } } });
    const merged = strategicMerge(
      base,
      asObject(job({ name: 'w', image: 'b:2', resources: { limits: { 'nvidia.com/gpu': 1 } } }), 'patch'),
      'patch',
    );
    expect(at(merged, 'spec', 'template', 'spec', 'containers')).toEqual([
      { name: 'w', image: 'b:2', args: ['worker'], resources: { limits: { cpu: '1', 'nvidia.com/gpu': 1 } } },
    ]);
    expect(() => strategicMerge(base, { spec: { unknownList: [1] } }, 'p')).toThrow(/not implemented/);
    expect(() => strategicMerge(base, { $patch: 'replace' }, 'p')).toThrow(/directives/);
    expect(splitImage('registry:5000/team/callosum:0.1.0')).toEqual({
      name: 'registry:5000/team/callosum',
      tag: '0.1.0',
      digest: undefined,
    });
  });

  it('the rules flag a latest image, GPUs in requests, a literal token and a Service that selects nothing', async () => {
    const cli = describeCli();
    const facts = imageFacts(readDockerfile('Dockerfile'));
    const resources = clone(built('overlays/gpu').resources);
    const workers = resources.find((r) => at(r, 'metadata', 'name') === 'callosum-workers')!;
    const container = at(workers, 'spec', 'template', 'spec', 'containers', 0) as JsonObject;
    container.image = 'callosum-gpu:latest';
    (at(container, 'resources', 'requests') as JsonObject)['nvidia.com/gpu'] = 1;
    container.env = [
      { name: 'CALLOSUM_TOKEN', value: 'hunter2' },
      { name: 'CALLOSUM_EPOCHZ', value: '3' },
    ];
    (at(workers, 'spec') as JsonObject).completions = 3;
    const service = resources.find((r) => r.kind === 'Service')!;
    (at(service, 'spec', 'selector') as JsonObject)['app.kubernetes.io/component'] = 'nothing';
    const problems = (await checkRules(resources, 'broken', cli, facts)).join('\n');
    for (const expected of [
      /not pinned by a tag/,
      /GPU nvidia\.com\/gpu in requests/,
      /CALLOSUM_TOKEN has a literal value/,
      /env CALLOSUM_EPOCHZ is not read by callosum worker/,
      /parallelism = completions/,
      /matches no pod template/,
    ]) {
      expect(problems).toMatch(expected);
    }
  });

  it('the rules flag plain-HTTP probes and ws:// against a TLS coordinator', async () => {
    const resources = clone(built('overlays/gpu-tls').resources);
    const coordinator = resources.find(
      (r) => r.kind === 'Job' && at(r, 'metadata', 'name') === 'callosum-coordinator',
    )!;
    const liveness = at(coordinator, 'spec', 'template', 'spec', 'containers', 0, 'livenessProbe', 'httpGet');
    delete (liveness as JsonObject).scheme;
    const workers = resources.find((r) => at(r, 'metadata', 'name') === 'callosum-workers')!;
    (at(workers, 'spec', 'template', 'spec', 'containers', 0) as JsonObject).args = [
      'worker',
      '--connect',
      'ws://callosum-coordinator:7070',
    ];
    const cli = describeCli();
    const problems = (await checkRules(resources, 'tls', cli, imageFacts(readDockerfile('Dockerfile')))).join(
      '\n',
    );
    expect(problems).toMatch(/livenessProbe must use HTTPS/);
    expect(problems).toMatch(/but the coordinator serves wss:\/\//);
  });

  it('a configuration value the CLI rejects is reported', async () => {
    await expect(parseWithCli('coordinator', [], { CALLOSUM_EPOCHS: 'two' })).rejects.toThrow(/rejects/);
    await expect(
      parseWithCli('worker', ['--connect', 'ws://x:1'], { CALLOSUM_BACKEND: 'cuda' }),
    ).rejects.toThrow(/rejects/);
  });
});

describe('deploy/docker, validated offline (no image is built)', () => {
  const rootPackage = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    packageManager: string;
  };
  const corePackage = JSON.parse(readFileSync(join(REPO, 'packages/core/package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };

  it.each(['Dockerfile', 'Dockerfile.gpu'])(
    '%s: pinned bases, the workspace pnpm, a pruned non-root image',
    (name) => {
      const dockerfile = readDockerfile(name);
      const aliases = new Set(dockerfile.stages.map((stage) => stage.alias).filter(Boolean));
      for (const stage of dockerfile.stages) {
        if (aliases.has(stage.from)) continue;
        const { tag } = splitImage(stage.from);
        expect(tag, `${name}: FROM ${stage.from}`).toMatch(/^\d[\w.-]*$/);
      }
      const pnpm = /^pnpm@([\d.]+)/.exec(rootPackage.packageManager)?.[1];
      expect(dockerfile.text).toContain(`pnpm@${pnpm}`);
      expect(dockerfile.text).toMatch(/pnpm install --offline --frozen-lockfile/);
      expect(dockerfile.text).toMatch(/pnpm --filter @callosum\/cli deploy --prod/);
      const final = dockerfile.stages.at(-1)!;
      expect(final.lines).toContain('COPY --from=build /out /app');
      const user = final.lines.filter((line) => line.startsWith('USER ')).at(-1);
      expect(user).toMatch(/^USER [1-9]\d*(:\d+)?$/);
      expect(imageFacts(dockerfile).entrypoint).toEqual(['node', '/app/dist/bin.js']);
      expect(imageFacts(dockerfile).wrappers.get('callosum-start-coordinator')).toBe('coordinator');
      // BuildKit's per-Dockerfile ignore file keeps host installs out of the context.
      const ignore = readFileSync(join(DOCKER, `${name}.dockerignore`), 'utf8').split('\n');
      expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', '**/dist', '.git']));
      expect(
        ignore.filter((line) => /^(deploy|deploy\/docker|packages|pnpm-lock\.yaml)\/?$/.test(line)),
      ).toEqual([]);
    },
  );

  it('the GPU image: CUDA 11.2 + cuDNN 8 runtime, tfjs-node-gpu at the tfjs version of core, found via NODE_PATH', () => {
    const dockerfile = readDockerfile('Dockerfile.gpu');
    const final = dockerfile.stages.at(-1)!;
    expect(final.from).toBe('nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04');
    const tfjs = corePackage.dependencies['@tensorflow/tfjs-core'];
    const install = final.lines.find((line) => line.includes('npm install'));
    expect(install).toContain(`@tensorflow/tfjs-node-gpu@${tfjs}`);
    const prefix = /mkdir -p (\/\S+)/.exec(install ?? '')?.[1];
    expect(final.lines).toContainEqual(expect.stringContaining(`NODE_PATH=${prefix}/node_modules`));
  });
});

describe('deploy/docker/start-coordinator.sh: resume when the run directory has checkpoints', () => {
  const directories: string[] = [];
  afterAll(async () => {
    await Promise.all(directories.map((dir) => rm(dir, { recursive: true, force: true })));
  });

  /** Runs the script with a stand-in `node` that prints what it was started with. */
  async function start(setup: (run: string) => Promise<void>, env: Record<string, string> = {}) {
    const dir = await mkdtemp(join(tmpdir(), 'callosum-start-'));
    directories.push(dir);
    const run = join(dir, 'run');
    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'bin', 'node'), '#!/bin/sh\necho "argv=$* resume=$CALLOSUM_RESUME"\n');
    await chmod(join(dir, 'bin', 'node'), 0o755);
    await setup(run);
    const environment = { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, CALLOSUM_OUT: run, ...env };
    try {
      const { stdout, stderr } = await promisify(execFile)(
        'sh',
        [join(DOCKER, 'start-coordinator.sh'), '--host', '0.0.0.0', '--port', '7070'],
        { env: environment },
      );
      return { code: 0, stdout: stdout.trim(), stderr, run };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout.trim(), stderr: failed.stderr, run };
    }
  }

  it('starts a new run in a new or empty directory', async () => {
    const fresh = await start(async () => {});
    expect(fresh.stdout).toBe('argv=/app/dist/bin.js coordinator --host 0.0.0.0 --port 7070 resume=');
    const empty = await start(async (run) => {
      await mkdir(join(run, 'checkpoints'), { recursive: true });
      // A checkpoint being written (not yet renamed into place) is not one.
      await writeFile(join(run, 'checkpoints', 'step-000000100.ckpt.42.tmp'), '');
    });
    expect(empty.stdout).toMatch(/ resume=$/);
  });

  it('resumes the run when it has a checkpoint', async () => {
    const restarted = await start(async (run) => {
      await mkdir(join(run, 'checkpoints'), { recursive: true });
      await writeFile(join(run, 'checkpoints', 'step-000000100.ckpt'), '');
    });
    expect(restarted.stdout).toBe(
      `argv=/app/dist/bin.js coordinator --host 0.0.0.0 --port 7070 resume=${restarted.run}`,
    );
    expect(restarted.stderr).toMatch(/resuming/);
  });

  it('refuses a finished run and a missing CALLOSUM_OUT', async () => {
    const finished = await start(async (run) => {
      await mkdir(join(run, 'model'), { recursive: true });
      await writeFile(join(run, 'model', 'model.json'), '{}');
    });
    expect(finished.code).toBe(1);
    expect(finished.stderr).toMatch(/has finished.*new directory/s);
    const unset = await start(async () => {}, { CALLOSUM_OUT: '' });
    expect(unset.code).not.toBe(0);
    expect(unset.stderr).toMatch(/CALLOSUM_OUT/);
  });
});

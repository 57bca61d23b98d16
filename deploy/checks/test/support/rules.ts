/** The project's rules on a set of objects (one build, or one standalone manifest). */
import type { Cli } from './cli.js';
import { parseWithCli } from './cli.js';
import type { ImageFacts } from './images.js';
import { asList, asObject, asString, at, isObject, type Json, type JsonObject } from './json.js';
import { splitImage } from './kustomize.js';

const TOKEN_SECRET = { name: 'callosum-token', key: 'token' };

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

const namespaceOf = (resource: JsonObject) => String(at(resource, 'metadata', 'namespace') ?? 'default');

/** Whether a label selector selects `pod`; `{}` selects every pod. */
function selects(selector: Json | undefined, pod: PodTemplate, where: string): boolean {
  const spec = asObject(selector ?? {}, where);
  for (const key of Object.keys(spec)) {
    if (key !== 'matchLabels') throw new Error(`${where}: ${key} is not evaluated by these rules`);
  }
  return Object.entries(asObject(spec.matchLabels ?? {}, where)).every(
    ([key, value]) => pod.labels[key] === value,
  );
}

/** The ingress rules of the NetworkPolicies that isolate `pod` (select it for Ingress). */
function isolatingRules(policies: JsonObject[], pod: PodTemplate): { policy: JsonObject; rules: Json[] }[] {
  return policies.flatMap((policy) => {
    const where = `NetworkPolicy/${at(policy, 'metadata', 'name')}`;
    const types = asList(at(policy, 'spec', 'policyTypes') ?? ['Ingress'], where);
    // Egress isolation would need the workers' traffic to the coordinator, DNS and each other modelled.
    if (types.includes('Egress') || at(policy, 'spec', 'egress') !== undefined)
      throw new Error(`${where}: egress rules are not evaluated by these rules`);
    if (
      !types.includes('Ingress') ||
      namespaceOf(policy) !== namespaceOf(pod.owner) ||
      !selects(at(policy, 'spec', 'podSelector'), pod, `${where} podSelector`)
    ) {
      return [];
    }
    return [{ policy, rules: asList(at(policy, 'spec', 'ingress') ?? [], where) }];
  });
}

/**
 * Whether the NetworkPolicies among `resources` let pods of `from` open a TCP connection to port `port`
 * of pods of `to`, as Kubernetes decides it: allowed unless a policy selects `to` for Ingress, and then
 * only if a rule of one of those policies admits both the source and the port.
 */
function admits(resources: JsonObject[], from: PodTemplate, to: PodTemplate, port: number): boolean {
  const policies = resources.filter((resource) => resource.kind === 'NetworkPolicy');
  const isolating = isolatingRules(policies, to);
  if (isolating.length === 0) return true;
  const containerPorts = asList(to.spec.containers, to.where).flatMap((container) =>
    asList(at(container, 'ports') ?? [], to.where),
  );
  return isolating.some(({ policy, rules }) =>
    rules.some((rule) => {
      const where = `NetworkPolicy/${at(policy, 'metadata', 'name')} ingress`;
      const peers = asList(at(rule, 'from') ?? [], where);
      const source = peers.some((peer) => {
        for (const key of Object.keys(asObject(peer, where))) {
          if (key !== 'podSelector') throw new Error(`${where}: from.${key} is not evaluated by these rules`);
        }
        // A podSelector alone selects pods in the policy's own namespace.
        return (
          namespaceOf(from.owner) === namespaceOf(policy) && selects(at(peer, 'podSelector'), from, where)
        );
      });
      const ports = asList(at(rule, 'ports') ?? [], where);
      const target = ports.some((entry) => {
        if (at(entry, 'endPort') !== undefined)
          throw new Error(`${where}: endPort is not evaluated by these rules`);
        if ((at(entry, 'protocol') ?? 'TCP') !== 'TCP') return false;
        const named = at(entry, 'port');
        if (named === undefined || named === port) return true;
        return containerPorts.some((p) => at(p, 'name') === named && at(p, 'containerPort') === port);
      });
      // No `from` admits every source, no `ports` every port.
      return (peers.length === 0 || source) && (ports.length === 0 || target);
    }),
  );
}

/**
 * Whether the build's NetworkPolicies let the pods of one workload (a Job or Pod, by name) reach port
 * `port` of another's: for tests that show what a policy denies.
 */
export function connectionAllowed(resources: JsonObject[], from: string, to: string, port: number): boolean {
  const template = (name: string) => {
    const owner = resources.find(
      (r) => ['Job', 'Pod'].includes(String(r.kind)) && at(r, 'metadata', 'name') === name,
    );
    if (owner === undefined) throw new Error(`no Job or Pod ${name}`);
    return podTemplates(owner, name)[0]!;
  };
  return admits(resources, template(from), template(to), port);
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

export async function checkRules(
  resources: JsonObject[],
  label: string,
  cli: Cli,
  facts: ImageFacts,
): Promise<string[]> {
  const problems: string[] = [];
  const problem = (text: string) => problems.push(`${label}: ${text}`);
  const nameOf = (resource: JsonObject) => `${resource.kind}/${at(resource, 'metadata', 'name')}`;
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

  // NetworkPolicies select pods, and admit pods: a selector that matches nothing (a mistyped label)
  // silently protects nothing, or admits nobody.
  for (const policy of byKind('NetworkPolicy')) {
    const inNamespace = templates.filter((pod) => namespaceOf(pod.owner) === namespaceOf(policy));
    const selector = at(policy, 'spec', 'podSelector');
    if (!inNamespace.some((pod) => selects(selector, pod, nameOf(policy)))) {
      problem(`${nameOf(policy)}: its podSelector ${JSON.stringify(selector)} matches no pod template`);
    }
    for (const rule of asList(at(policy, 'spec', 'ingress') ?? [], nameOf(policy))) {
      for (const peer of asList(at(rule, 'from') ?? [], nameOf(policy))) {
        const from = at(peer, 'podSelector');
        if (!inNamespace.some((pod) => selects(from, pod, nameOf(policy))))
          problem(`${nameOf(policy)}: ingress from ${JSON.stringify(from)} matches no pod template`);
      }
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
    // Prometheus' scrape annotations, if any, point at /metrics on the port it listens on, over HTTPS
    // when TLS is on.
    const annotations = asObject(
      at(coordinator.pod.owner, 'spec', 'template', 'metadata', 'annotations') ?? {},
      coordinator.where,
    );
    if (annotations['prometheus.io/scrape'] === 'true') {
      const scrape = {
        port: String(port),
        path: '/metrics',
        scheme: tls ? 'https' : 'http',
      };
      for (const [key, expected] of Object.entries(scrape)) {
        if ((annotations[`prometheus.io/${key}`] ?? (key === 'scheme' ? 'http' : undefined)) !== expected)
          problem(`${coordinator.where}: annotation prometheus.io/${key} must be ${expected}`);
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

  if (coordinator !== undefined && worker !== undefined) {
    const port = Number(coordinator.options.port);
    if (!admits(resources, worker.pod, coordinator.pod, port))
      problem(`the NetworkPolicies keep the workers from the coordinator's port ${port}`);
  }

  // The ring topology: workers connect to each other at the address each advertised. In a pod that is
  // the pod IP, on a port fixed in advance so that a headless Service and the NetworkPolicies can name it.
  if (coordinator?.options.topology === 'ring' && worker !== undefined) {
    const peerPort = Number(worker.options.peerPort);
    const ports = asList(worker.container.ports ?? [], worker.where);
    if (peerPort === 0) {
      problem(
        `${worker.where}: ring topology: set CALLOSUM_PEER_PORT; 0 picks any free port, which nothing can name`,
      );
    } else if (
      !ports.some((p) => at(p, 'containerPort') === peerPort && (at(p, 'protocol') ?? 'TCP') === 'TCP')
    ) {
      problem(`${worker.where}: ring topology: peer port ${peerPort} is not a declared TCP containerPort`);
    }
    // Peer links are all TLS or all plain: the coordinator refuses a worker that differs (PEER_TLS_MISMATCH).
    const coordinatorPeerTls = coordinator.options.peerTls === true;
    const workerPeerTls = worker.options.peerTlsCa !== undefined;
    // As `callosum worker` picks it: its peer certificate and key, or else its --tls-cert and --tls-key.
    const { peerTlsCert, peerTlsKey, tlsCert, tlsKey } = worker.options;
    const ownPeerCertificate = peerTlsCert !== undefined || peerTlsKey !== undefined;
    const peerCertificate = ownPeerCertificate ? [peerTlsCert, peerTlsKey] : [tlsCert, tlsKey];
    if (coordinatorPeerTls && !workerPeerTls) {
      problem(
        `${worker.where}: peer TLS: the coordinator requires it (CALLOSUM_PEER_TLS); set CALLOSUM_PEER_TLS_CA and the worker's certificate`,
      );
    } else if (workerPeerTls && peerCertificate.includes(undefined)) {
      problem(
        `${worker.where}: peer TLS: CALLOSUM_PEER_TLS_CA needs the worker's certificate and key (CALLOSUM_PEER_TLS_CERT and CALLOSUM_PEER_TLS_KEY, or CALLOSUM_TLS_CERT and CALLOSUM_TLS_KEY)`,
      );
    }
    if (workerPeerTls && !coordinatorPeerTls) {
      problem(
        `${worker.where}: peer TLS: the workers use it (CALLOSUM_PEER_TLS_CA), the coordinator would refuse them: set CALLOSUM_PEER_TLS`,
      );
    }
    const advertised = asList(worker.container.env ?? [], worker.where).find(
      (entry) => at(entry, 'name') === 'CALLOSUM_ADVERTISE_HOST',
    );
    if (
      at(advertised, 'valueFrom', 'fieldRef', 'fieldPath') !== 'status.podIP' ||
      worker.args.some((arg) => arg.startsWith('--advertise-host'))
    ) {
      problem(
        `${worker.where}: ring topology: CALLOSUM_ADVERTISE_HOST must be the pod IP (fieldRef status.podIP)`,
      );
    }
    const resolvesToPeerPort = (target: Json | undefined) =>
      target === peerPort ||
      ports.some((p) => at(p, 'name') === target && at(p, 'containerPort') === peerPort);
    const headless = byKind('Service').some(
      (service) =>
        at(service, 'spec', 'clusterIP') === 'None' &&
        namespaceOf(service) === namespaceOf(worker.pod.owner) &&
        Object.entries(asObject(at(service, 'spec', 'selector') ?? {}, nameOf(service))).every(
          ([key, value]) => worker.pod.labels[key] === value,
        ) &&
        asList(at(service, 'spec', 'ports') ?? [], nameOf(service)).some(
          // No proxy translates a headless Service's port: it must be the pod's own, the port peers dial.
          (p) => at(p, 'port') === peerPort && resolvesToPeerPort(at(p, 'targetPort') ?? at(p, 'port')),
        ),
    );
    if (!headless)
      problem(`ring topology: no headless Service (clusterIP: None) selects the workers on port ${peerPort}`);
    if (!admits(resources, worker.pod, worker.pod, peerPort))
      problem(`ring topology: the NetworkPolicies keep the workers from each other's peer port ${peerPort}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------

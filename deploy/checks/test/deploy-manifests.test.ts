/**
 * The deployment files under deploy/, validated offline: no cluster, no kubectl, no kustomize binary and
 * no Docker are involved. What is checked:
 *
 * - every YAML file under deploy/k8s parses, and means the same under YAML 1.1 (kubectl) and 1.2;
 * - each kustomization builds, with a small kustomize subset (support/kustomize.ts: resources,
 *   components, patches as strategic-merge patches, namespace, labels, images) that throws on anything
 *   it does not implement; the ring component also on top of the other overlays;
 * - every object of every build (and every standalone manifest) passes the Kubernetes schema of
 *   `kubernetes-models`, and has no field that the models' own type declarations do not know (their
 *   schemas accept unknown fields, so strict JSON schemas are generated from those declarations;
 *   support/k8s-schema.ts);
 * - the project's rules (support/rules.ts): Job restart policies, whole GPUs in limits only, Services
 *   and NetworkPolicies that select pods, workers that connect to an existing Service and port (and that
 *   the policies let through), the token only from a Secret reference, images pinned by tag, probes on
 *   the coordinator, in the ring topology the peer port at the pod IP behind a headless Service that the
 *   policies admit between workers, and a configuration (flags and every environment variable set) that
 *   the real `callosum` program reads and accepts (support/cli.ts);
 * - the Dockerfiles' pins, and the coordinator start script's resume decision (run with a stand-in node).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { describeCli, parseWithCli } from './support/cli.js';
import { DOCKER, imageFacts, readDockerfile } from './support/images.js';
import { asList, asObject, at, clone, filesUnder, type JsonObject, REPO, rel } from './support/json.js';
import { schemaProblems } from './support/k8s-schema.js';
import { type Build, kustomize, splitImage, strategicMerge } from './support/kustomize.js';
import { checkRules, connectionAllowed } from './support/rules.js';
import { loadYaml } from './support/yaml.js';

const K8S = join(REPO, 'deploy', 'k8s');
const OVERLAYS = [
  'overlays/cpu',
  'overlays/gpu',
  'overlays/gpu-tls',
  'overlays/gpu-ring',
  'overlays/gpu-ring-tls',
];
const BUILDS = ['base', ...OVERLAYS];
/** What every build holds, and what the ring component adds. */
const BASE_OBJECTS = [
  'ConfigMap/callosum-config',
  'Job/callosum-coordinator',
  'Job/callosum-workers',
  'PersistentVolumeClaim/callosum-run',
  'Service/callosum-coordinator',
];
const RING_OBJECTS = ['NetworkPolicy/callosum-peers', 'Service/callosum-peers'];
const RING_BUILDS = new Set(['overlays/gpu-ring', 'overlays/gpu-ring-tls']);

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

function findIn(resources: JsonObject[], kind: string, name: string): JsonObject {
  const found = resources.find((r) => r.kind === kind && at(r, 'metadata', 'name') === name);
  if (found === undefined) throw new Error(`no ${kind}/${name}`);
  return found;
}
const containerOf = (job: JsonObject) =>
  asObject(at(job, 'spec', 'template', 'spec', 'containers', 0), 'container');
const envOf = (job: JsonObject, name: string) =>
  asList(containerOf(job).env ?? [], 'env').find((entry) => at(entry, 'name') === name);

/** Kustomizations written for a test (a component on top of another overlay), removed afterwards. */
const scratch: string[] = [];
afterAll(async () => {
  await Promise.all(scratch.map((dir) => rm(dir, { recursive: true, force: true })));
});
async function kustomizeScratch(kustomization: JsonObject): Promise<Build> {
  const dir = await mkdtemp(join(tmpdir(), 'callosum-kustomize-'));
  scratch.push(dir);
  await writeFile(join(dir, 'kustomization.yaml'), JSON.stringify(kustomization, null, 2));
  return kustomize(dir);
}

describe('deploy/k8s, validated offline (no cluster, no kubectl)', () => {
  it('every YAML file parses, the same under YAML 1.1 and 1.2', () => {
    expect(yamlFiles.length).toBeGreaterThan(5);
    for (const file of yamlFiles) expect(loadYaml(file).length, rel(file)).toBeGreaterThan(0);
  });

  it.each(BUILDS)('%s builds with the kustomize subset', (dir) => {
    const build = built(dir);
    expect(build.resources.map((r) => `${r.kind}/${at(r, 'metadata', 'name')}`).sort()).toEqual(
      [...BASE_OBJECTS, ...(RING_BUILDS.has(dir) ? RING_OBJECTS : [])].sort(),
    );
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
    const find = (dir: string, kind: string, name: string) => findIn(built(dir).resources, kind, name);
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

  // deploy/README.md has users set their own namespace in the overlays they deploy: every patch of an
  // overlay built on another must still apply there, and nothing may name `callosum` as a namespace.
  it.each(OVERLAYS)(
    '%s builds into another namespace set in the overlays: the same objects there, the rules holding',
    async (dir) => {
      const copy = await mkdtemp(join(tmpdir(), 'callosum-k8s-'));
      scratch.push(copy);
      await cp(K8S, copy, { recursive: true });
      for (const file of filesUnder(copy, (name) => name === 'kustomization.yaml')) {
        const text = readFileSync(file, 'utf8');
        await writeFile(file, text.replace(/^namespace: callosum$/m, 'namespace: ml-team'));
      }
      const elsewhere = kustomize(join(copy, dir));
      for (const resource of elsewhere.resources)
        expect(at(resource, 'metadata', 'namespace'), dir).toBe('ml-team');
      const movedBack = elsewhere.resources.map((resource) => {
        const moved = clone(resource);
        asObject(moved.metadata, 'metadata').namespace = 'callosum';
        return moved;
      });
      expect(movedBack).toEqual(built(dir).resources);
      expect(JSON.stringify(elsewhere.resources)).not.toMatch(/\.callosum\.svc|\.callosum\b(?!-)/);
      const rules = await checkRules(
        elsewhere.resources,
        `${dir} in ml-team`,
        describeCli(),
        imageFacts(readDockerfile('Dockerfile')),
      );
      expect(rules).toEqual([]);
    },
  );

  it('the ring component: the topology on the coordinator, a fixed peer port at the pod IP on the workers, a headless Service and a NetworkPolicy that agree', () => {
    const resources = built('overlays/gpu-ring').resources;
    const coordinator = findIn(resources, 'Job', 'callosum-coordinator');
    const workers = findIn(resources, 'Job', 'callosum-workers');
    // Only the coordinator reads the topology (the workers follow its welcome).
    expect(envOf(coordinator, 'CALLOSUM_TOPOLOGY')).toEqual({ name: 'CALLOSUM_TOPOLOGY', value: 'ring' });
    expect(envOf(workers, 'CALLOSUM_TOPOLOGY')).toBeUndefined();
    expect(
      at(findIn(resources, 'ConfigMap', 'callosum-config'), 'data', 'CALLOSUM_TOPOLOGY'),
    ).toBeUndefined();

    const worker = containerOf(workers);
    // Merged into the GPU overlay's worker: its image, its args and the token stay.
    expect(worker.image).toBe('registry.example.com/callosum-gpu:0.1.0');
    expect(worker.args).toEqual(['worker', '--connect', 'ws://callosum-coordinator:7070']);
    expect(at(envOf(workers, 'CALLOSUM_TOKEN'), 'valueFrom', 'secretKeyRef', 'name')).toBe('callosum-token');
    expect(envOf(workers, 'CALLOSUM_ADVERTISE_HOST')).toEqual({
      name: 'CALLOSUM_ADVERTISE_HOST',
      valueFrom: { fieldRef: { fieldPath: 'status.podIP' } },
    });
    expect(worker.ports).toEqual([{ name: 'peer', containerPort: 7071, protocol: 'TCP' }]);

    const service = findIn(resources, 'Service', 'callosum-peers');
    expect(at(service, 'spec')).toEqual({
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: { 'app.kubernetes.io/name': 'callosum', 'app.kubernetes.io/component': 'worker' },
      ports: [{ name: 'peer', port: 7071, targetPort: 'peer', protocol: 'TCP' }],
    });
    const podLabels = asObject(at(workers, 'spec', 'template', 'metadata', 'labels'), 'labels');
    expect(podLabels).toMatchObject(asObject(at(service, 'spec', 'selector'), 'selector'));

    // Worker pods admit worker pods on the peer port, and nothing else.
    const policy = findIn(resources, 'NetworkPolicy', 'callosum-peers');
    const workerSelector = {
      matchLabels: { 'app.kubernetes.io/name': 'callosum', 'app.kubernetes.io/component': 'worker' },
    };
    expect(at(policy, 'spec')).toEqual({
      podSelector: workerSelector,
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: workerSelector }], ports: [{ protocol: 'TCP', port: 7071 }] }],
    });
    expect(podLabels).toMatchObject(workerSelector.matchLabels);

    // One peer port everywhere: the variable, the container, the Service and the policy.
    const peerPort = Number(at(envOf(workers, 'CALLOSUM_PEER_PORT'), 'value'));
    expect(peerPort).toBe(7071);
    expect([
      at(worker, 'ports', 0, 'containerPort'),
      at(service, 'spec', 'ports', 0, 'port'),
      at(policy, 'spec', 'ingress', 0, 'ports', 0, 'port'),
    ]).toEqual([peerPort, peerPort, peerPort]);

    // What the policy changes: the coordinator (or any other pod) can no longer reach a worker's peer
    // port, nor a worker any other port of a worker; the workers still reach the coordinator.
    expect(connectionAllowed(resources, 'callosum-workers', 'callosum-workers', peerPort)).toBe(true);
    expect(connectionAllowed(resources, 'callosum-coordinator', 'callosum-workers', peerPort)).toBe(false);
    expect(connectionAllowed(resources, 'callosum-workers', 'callosum-workers', 7070)).toBe(false);
    expect(connectionAllowed(resources, 'callosum-workers', 'callosum-coordinator', 7070)).toBe(true);
    expect(
      connectionAllowed(
        built('overlays/gpu').resources,
        'callosum-coordinator',
        'callosum-workers',
        peerPort,
      ),
    ).toBe(true);
  });

  it("the ring-tls component: peer TLS required by the coordinator, the peers' CA, certificate and key mounted on every worker", () => {
    const resources = built('overlays/gpu-ring-tls').resources;
    const coordinator = findIn(resources, 'Job', 'callosum-coordinator');
    const workers = findIn(resources, 'Job', 'callosum-workers');
    expect(envOf(coordinator, 'CALLOSUM_PEER_TLS')).toEqual({ name: 'CALLOSUM_PEER_TLS', value: '1' });
    const worker = containerOf(workers);
    const mount = asList(worker.volumeMounts ?? [], 'volumeMounts').find((m) => at(m, 'name') === 'peer-tls');
    expect(mount).toEqual({ name: 'peer-tls', mountPath: '/etc/callosum/peer-tls', readOnly: true });
    for (const [variable, file] of [
      ['CALLOSUM_PEER_TLS_CA', 'ca.crt'],
      ['CALLOSUM_PEER_TLS_CERT', 'tls.crt'],
      ['CALLOSUM_PEER_TLS_KEY', 'tls.key'],
    ]) {
      expect(at(envOf(workers, variable as string), 'value')).toBe(`/etc/callosum/peer-tls/${file}`);
    }
    const volumes = asList(at(workers, 'spec', 'template', 'spec', 'volumes'), 'volumes');
    expect(volumes.find((v) => at(v, 'name') === 'peer-tls')).toEqual({
      name: 'peer-tls',
      secret: { secretName: 'callosum-peer-tls' },
    });
    // On top of gpu-tls and the ring: wss:// to the coordinator, the CA for it, the peer port at the pod IP.
    expect(worker.args).toEqual(['worker', '--connect', 'wss://callosum-coordinator:7070']);
    expect(at(envOf(workers, 'CALLOSUM_TLS_CA'), 'value')).toBe('/etc/callosum/tls-ca/ca.crt');
    expect(at(envOf(workers, 'CALLOSUM_PEER_PORT'), 'value')).toBe('7071');
  });

  it("the rules catch peer TLS on one side only, or without the worker's key", async () => {
    const withoutWorkerSide = clone(built('overlays/gpu-ring-tls').resources);
    const workers = findIn(withoutWorkerSide, 'Job', 'callosum-workers');
    const container = containerOf(workers);
    container.env = asList(container.env, 'env').filter(
      (e) => !String(at(e, 'name')).startsWith('CALLOSUM_PEER_TLS_'),
    );
    const cli = describeCli();
    const facts = imageFacts(readDockerfile('Dockerfile'));
    expect(await checkRules(withoutWorkerSide, 'no worker peer TLS', cli, facts)).toEqual([
      expect.stringMatching(
        /peer TLS: the coordinator requires it \(CALLOSUM_PEER_TLS\); set CALLOSUM_PEER_TLS_CA/,
      ),
    ]);
    const withoutCertificate = clone(built('overlays/gpu-ring-tls').resources);
    const workerWithCaOnly = containerOf(findIn(withoutCertificate, 'Job', 'callosum-workers'));
    workerWithCaOnly.env = asList(workerWithCaOnly.env, 'env').filter(
      (e) => at(e, 'name') !== 'CALLOSUM_PEER_TLS_KEY',
    );
    expect(await checkRules(withoutCertificate, 'no peer key', cli, facts)).toEqual([
      expect.stringMatching(/peer TLS: CALLOSUM_PEER_TLS_CA needs the worker's certificate and key/),
    ]);
    const withoutCoordinatorSide = clone(built('overlays/gpu-ring-tls').resources);
    const coordinator = containerOf(findIn(withoutCoordinatorSide, 'Job', 'callosum-coordinator'));
    coordinator.env = asList(coordinator.env, 'env').filter((e) => at(e, 'name') !== 'CALLOSUM_PEER_TLS');
    expect(await checkRules(withoutCoordinatorSide, 'no coordinator peer TLS', cli, facts)).toEqual([
      expect.stringMatching(/peer TLS: the workers use it \(CALLOSUM_PEER_TLS_CA\), .*set CALLOSUM_PEER_TLS/),
    ]);
  });

  it.each(['overlays/cpu', 'overlays/gpu-tls'])(
    'the ring component composes with %s: valid objects, the rules hold',
    async (overlay) => {
      const build = await kustomizeScratch({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        namespace: 'callosum',
        resources: [join(K8S, overlay)],
        components: [join(K8S, 'components', 'ring')],
      });
      const names = build.resources.map((r) => `${r.kind}/${at(r, 'metadata', 'name')}`).sort();
      expect(names).toEqual([...BASE_OBJECTS, ...RING_OBJECTS].sort());
      for (const resource of build.resources) expect(at(resource, 'metadata', 'namespace')).toBe('callosum');
      expect(build.resources.flatMap((r) => schemaProblems(r, `${overlay} + ring ${r.kind}`))).toEqual([]);
      const rules = await checkRules(
        build.resources,
        `${overlay} + ring`,
        describeCli(),
        imageFacts(readDockerfile('Dockerfile')),
      );
      expect(rules).toEqual([]);
      const workers = findIn(build.resources, 'Job', 'callosum-workers');
      expect(at(envOf(workers, 'CALLOSUM_ADVERTISE_HOST'), 'valueFrom', 'fieldRef', 'fieldPath')).toBe(
        'status.podIP',
      );
      // The overlay's own worker settings survive the component's patch.
      const connect =
        overlay === 'overlays/gpu-tls' ? 'wss://callosum-coordinator:7070' : 'ws://callosum-coordinator:7070';
      expect(containerOf(workers).args).toEqual(['worker', '--connect', connect]);
    },
  );
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

  it('the rules flag plain-HTTP probes and scrapes and ws:// against a TLS coordinator', async () => {
    const resources = clone(built('overlays/gpu-tls').resources);
    const coordinator = resources.find(
      (r) => r.kind === 'Job' && at(r, 'metadata', 'name') === 'callosum-coordinator',
    )!;
    const liveness = at(coordinator, 'spec', 'template', 'spec', 'containers', 0, 'livenessProbe', 'httpGet');
    delete (liveness as JsonObject).scheme;
    delete (at(coordinator, 'spec', 'template', 'metadata', 'annotations') as JsonObject)[
      'prometheus.io/scheme'
    ];
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
    expect(problems).toMatch(/annotation prometheus\.io\/scheme must be https/);
    expect(problems).toMatch(/but the coordinator serves wss:\/\//);
  });

  describe('the ring rules', () => {
    const worker = (resources: JsonObject[]) => containerOf(findIn(resources, 'Job', 'callosum-workers'));
    const setEnv = (resources: JsonObject[], name: string, entry: JsonObject | undefined) => {
      const container = worker(resources);
      const env = asList(container.env, 'env').filter((e) => at(e, 'name') !== name);
      container.env = entry === undefined ? env : [...env, entry];
    };
    const service = (resources: JsonObject[]) => findIn(resources, 'Service', 'callosum-peers');
    const policy = (resources: JsonObject[]) => findIn(resources, 'NetworkPolicy', 'callosum-peers');
    const mistakes: [string, (resources: JsonObject[]) => void, RegExp][] = [
      [
        'no advertised address (the worker would guess it)',
        (r) => setEnv(r, 'CALLOSUM_ADVERTISE_HOST', undefined),
        /CALLOSUM_ADVERTISE_HOST must be the pod IP/,
      ],
      [
        'an advertised address that is not the pod IP',
        (r) => setEnv(r, 'CALLOSUM_ADVERTISE_HOST', { name: 'CALLOSUM_ADVERTISE_HOST', value: '10.0.0.1' }),
        /CALLOSUM_ADVERTISE_HOST must be the pod IP/,
      ],
      [
        'no fixed peer port',
        (r) => setEnv(r, 'CALLOSUM_PEER_PORT', undefined),
        /ring topology: set CALLOSUM_PEER_PORT/,
      ],
      [
        'a container port that is not the peer port',
        (r) => {
          (at(worker(r), 'ports', 0) as JsonObject).containerPort = 7072;
        },
        /peer port 7071 is not a declared TCP containerPort/,
      ],
      [
        'a Service port that is not the peer port',
        (r) => {
          (at(service(r), 'spec', 'ports', 0) as JsonObject).port = 7072;
        },
        /no headless Service \(clusterIP: None\) selects the workers on port 7071/,
      ],
      [
        'a Service with a cluster IP',
        (r) => {
          delete asObject(at(service(r), 'spec'), 'spec').clusterIP;
        },
        /no headless Service/,
      ],
      [
        'a Service that selects the coordinator',
        (r) => {
          (at(service(r), 'spec', 'selector') as JsonObject)['app.kubernetes.io/component'] = 'coordinator';
        },
        /no headless Service/,
      ],
      [
        'a policy port that is not the peer port',
        (r) => {
          (at(policy(r), 'spec', 'ingress', 0, 'ports', 0) as JsonObject).port = 7072;
        },
        /keep the workers from each other's peer port 7071/,
      ],
      [
        'a policy that admits the coordinator instead of the workers',
        (r) => {
          (at(policy(r), 'spec', 'ingress', 0, 'from', 0, 'podSelector', 'matchLabels') as JsonObject)[
            'app.kubernetes.io/component'
          ] = 'coordinator';
        },
        /keep the workers from each other's peer port 7071/,
      ],
      [
        'a policy that selects no pod (and so protects nothing)',
        (r) => {
          (at(policy(r), 'spec', 'podSelector', 'matchLabels') as JsonObject)['app.kubernetes.io/component'] =
            'workers';
        },
        /NetworkPolicy\/callosum-peers: its podSelector .* matches no pod template/,
      ],
      [
        'a policy on the coordinator that shuts the workers out',
        (r) => {
          const coordinatorPolicy = clone(policy(r));
          asObject(coordinatorPolicy.metadata, 'metadata').name = 'coordinator';
          (at(coordinatorPolicy, 'spec', 'podSelector', 'matchLabels') as JsonObject)[
            'app.kubernetes.io/component'
          ] = 'coordinator';
          r.push(coordinatorPolicy);
        },
        /keep the workers from the coordinator's port 7070/,
      ],
      [
        'the topology set on the workers',
        (r) => setEnv(r, 'CALLOSUM_TOPOLOGY', { name: 'CALLOSUM_TOPOLOGY', value: 'ring' }),
        /env CALLOSUM_TOPOLOGY is not read by callosum worker/,
      ],
    ];

    it.each(mistakes)('flag %s', async (_, mistake, expected) => {
      const resources = clone(built('overlays/gpu-ring').resources);
      mistake(resources);
      const problems = await checkRules(
        resources,
        'ring',
        describeCli(),
        imageFacts(readDockerfile('Dockerfile')),
      );
      expect(problems.join('\n')).toMatch(expected);
    });
  });

  it('the kustomize subset keeps Components and Kustomizations apart and does not merge container ports', async () => {
    await expect(
      kustomizeScratch({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        resources: [join(K8S, 'components', 'ring')],
      }),
    ).rejects.toThrow(/expected 'Component' to be 'Kustomization'/);
    await expect(
      kustomizeScratch({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        components: [join(K8S, 'overlays', 'gpu')],
      }),
    ).rejects.toThrow(/expected 'Kustomization' to be 'Component'/);
    const base = job({ name: 'w', image: 'a:1', ports: [{ containerPort: 1 }] });
    expect(() =>
      strategicMerge(base, asObject(job({ name: 'w', ports: [{ containerPort: 2 }] }), 'patch'), 'p'),
    ).toThrow(/ports list the base already has/);
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
    await writeFile(
      join(dir, 'bin', 'node'),
      '#!/bin/sh\necho "argv=$* resume=$CALLOSUM_RESUME"\n' +
        'if [ -n "$CALLOSUM_OVERWRITE" ]; then echo "overwrite=$CALLOSUM_OVERWRITE"; fi\n',
    );
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

  it('starts again, moving the files aside, when an earlier attempt died before its first checkpoint', async () => {
    const retried = await start(async (run) => {
      await mkdir(run, { recursive: true });
      await writeFile(join(run, 'callosum-run.json'), '{}');
      await writeFile(join(run, 'metrics.jsonl'), '');
    });
    expect(retried.stdout).toBe(
      'argv=/app/dist/bin.js coordinator --host 0.0.0.0 --port 7070 resume=\noverwrite=true',
    );
    expect(retried.stderr).toMatch(/starting the run again/);
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

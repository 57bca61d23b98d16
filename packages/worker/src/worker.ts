import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  AUTH_CLOCK_WINDOW_MS,
  AUTH_HEADER,
  BackendNames,
  type BatchTotals,
  CallosumError,
  type CoordinatorMessage,
  counted,
  createAuthHeader,
  createMsgpackCodec,
  DEFAULT_WIRE_DTYPE,
  ErrorCodes,
  FAILURE_ATTEMPT_PROTOCOL,
  FrameFileLink,
  fingerprintOfTask,
  floatsFromWire,
  gradientReply,
  INSTANCE_HEADER,
  initBackend,
  isCallosumError,
  loadTaskModule,
  NON_FINITE_METRICS_PROTOCOL,
  PLAIN_HTTP_TO_TLS_REASON,
  PROTOCOL_VERSION,
  parseCoordinatorMessage,
  protocolAtLeast,
  readProbe,
  readsTensorFrames,
  stepLabel,
  TENSOR_DTYPES,
  toWireTensor,
  type WireDtype,
  type WorkerMessage,
  type WorkerPhase,
} from '@callosum/core';
import WebSocket from 'ws';
import { ComputeThreads } from './compute-threads.js';
import { GradientService } from './gradient-service.js';
import { resolveWorkerOptions, type WorkerOptions } from './options.js';
import { checkPeerTls } from './peer-tls.js';
import { RingPeers } from './ring-peers.js';
import { ThreadedGradientService } from './threaded-gradient-service.js';

export interface WorkerExit {
  /** 0 when the coordinator ended the run; non-zero when the worker gave up. */
  readonly exitCode: number;
  readonly reason: string;
  readonly stepsComputed: number;
}

/**
 * Runs a worker until the coordinator ends the run (exit code 0) or stays unreachable for
 * `giveUpAfterMs` (exit code 1). Reconnects with exponential backoff when the connection drops.
 */
export async function runWorker(options: WorkerOptions): Promise<WorkerExit> {
  // First: a wrong address or option is reported at once, not after the backend has loaded.
  const settings = resolveWorkerOptions(options);
  if (settings.peerTls !== undefined) await checkPeerTls(settings.peerTls);
  const log = settings.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const name = settings.name ?? `${hostname()}:${process.pid}`;
  // Who this worker is on every connection it makes (INSTANCE_HEADER): its name need not be unique.
  const instance = randomBytes(16).toString('hex');
  if (settings.tls !== undefined && settings.url.startsWith('ws://')) {
    log(
      `worker ${name}: warning: TLS settings (--tls-ca, --tls-cert) are for wss://; ${settings.url} is not encrypted`,
    );
  }
  const choice = await initBackend(settings.backend);
  const task =
    settings.task === undefined
      ? undefined
      : await loadTaskModule(settings.task, { log: (line) => log(`worker: ${line}`) });
  // Sent in the hello, for the coordinator to compare with its own task's.
  const fingerprint = task === undefined ? undefined : fingerprintOfTask(task);
  // tfjs-node computes with its own thread pool; threads of ours are for wasm and cpu.
  const threads = choice.backend === BackendNames.TENSORFLOW ? 1 : settings.threads;
  const service =
    threads === 1
      ? new GradientService(task)
      : new ThreadedGradientService(
          new GradientService(task),
          await ComputeThreads.start(threads - 1, { backend: choice.backend, taskModule: settings.task }),
        );
  log(`worker ${name}: backend ${choice.backend} (${choice.reason}), ${counted(threads, 'compute thread')}`);

  const codec = createMsgpackCodec();
  // Ring topology only: this worker's peer port and replica, set up by a ring run's welcome.
  const ring = new RingPeers({ settings, name, codec, model: service, log });
  let stepsComputed = 0;
  let unreachableSince = Date.now();
  let delay = settings.reconnectDelayMs;

  try {
    for (;;) {
      const outcome = await runConnection();
      if (outcome.kind === 'ended') return { exitCode: 0, reason: outcome.reason, stepsComputed };
      if (outcome.kind === 'fatal') return { exitCode: 1, reason: outcome.reason, stepsComputed };
      if (outcome.welcomed) {
        unreachableSince = Date.now();
        delay = settings.reconnectDelayMs;
      }
      if (Date.now() - unreachableSince >= settings.giveUpAfterMs) {
        const notFor = `for ${settings.giveUpAfterMs} ms (${outcome.reason})`;
        return {
          exitCode: 1,
          reason: outcome.refused
            ? `the coordinator at ${settings.url} kept refusing this worker ${notFor}`
            : `no coordinator at ${settings.url} ${notFor}`,
          stepsComputed,
        };
      }
      // Jittered, and never past the moment to give up: the last attempt is made then.
      const untilGivingUp = settings.giveUpAfterMs - (Date.now() - unreachableSince);
      const wait = Math.max(0, Math.round(Math.min(delay * (0.5 + Math.random() / 2), untilGivingUp)));
      log(`worker ${name}: connection lost (${outcome.reason}); retrying in ${wait} ms`);
      await new Promise((resolve) => setTimeout(resolve, wait));
      delay = Math.min(delay * 2, settings.maxReconnectDelayMs);
    }
  } finally {
    await ring.close();
    await service.dispose();
  }

  function runConnection(): Promise<Outcome> {
    return new Promise((resolve) => {
      const socket = new WebSocket(settings.url, {
        perMessageDeflate: false,
        maxPayload: settings.maxMessageBytes,
        // An all-zero mask makes ws send frames as they are instead of copying each one to mask it.
        // Masking protects HTTP proxies from page content a browser script controls; this client is
        // not a browser, and what it sends is its own (see docs/security.md).
        generateMask: (mask: Buffer) => mask.fill(0),
        ...settings.tls,
        headers: {
          [INSTANCE_HEADER]: instance,
          ...(settings.token === undefined ? {} : { [AUTH_HEADER]: createAuthHeader(settings.token, name) }),
        },
      });
      let welcomed = false;
      // This machine's address on the connection: where ring peers can likely reach it too.
      let localAddress: string | undefined;
      socket.on('upgrade', (response) => {
        localAddress = response.socket.localAddress;
      });
      let settled: Outcome | undefined;
      let heartbeat: NodeJS.Timeout | undefined;
      let phase: WorkerPhase = 'idle';

      // Set by the welcome: a 1.0 coordinator reads plain MessagePack frames only; weights and
      // gradients travel in the run's wire dtype.
      let tensorFrames = false;
      let wireDtype: WireDtype = DEFAULT_WIRE_DTYPE;
      // A 1.11 coordinator reads which reduction attempt a failed `reduce` belonged to.
      let failuresNameAttempt = false;
      // A 1.12 coordinator takes NaN and ±Infinity in `metricSums`; an older one refuses the frame.
      let nonFiniteMetrics = false;
      // Set by a welcome whose frame files this worker can read: large frames go as files both ways.
      let frameFiles: FrameFileLink | undefined;
      // The memory of the last gradient frame, once it went as a file: nothing refers to it then, and
      // the next gradient is written in it (a socket may still be sending a frame it was given).
      let spareGradientFrame: ArrayBuffer | undefined;
      /** Sends `frame`; true if it went as a file, and so its memory is free again. */
      const sendFrame = (frame: Uint8Array): boolean => {
        if (socket.readyState !== WebSocket.OPEN) return false;
        const sent = frameFiles?.outgoing(frame) ?? frame;
        socket.send(sent);
        return sent !== frame;
      };
      const send = (message: WorkerMessage) =>
        sendFrame(codec.encode(message, { tensorFrame: tensorFrames }));
      const finish = (outcome: Outcome) => {
        settled ??= outcome;
        socket.close();
      };

      socket.on('open', () => {
        send({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          workerName: name,
          backend: choice.backend,
          pid: process.pid,
          hostname: hostname(),
          ...(fingerprint === undefined ? {} : { task: fingerprint }),
          ...(settings.peerTls === undefined ? {} : { peerTls: true }),
        });
      });
      // One message at a time, in arrival order: a shard computed on threads is awaited.
      let received = Promise.resolve();
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        received = received.then(() => receive(data, isBinary));
      });
      async function receive(data: Buffer, isBinary: boolean): Promise<void> {
        // The connection is ending: what still arrives on it belongs to nothing this worker will do.
        if (settled !== undefined) return;
        let message: CoordinatorMessage | undefined;
        try {
          if (!isBinary) {
            throw new CallosumError(ErrorCodes.MALFORMED_MESSAGE, 'text frames are not part of the protocol');
          }
          phase = 'receiving';
          let frame: Buffer;
          try {
            frame = frameFiles?.incoming(data) ?? data;
          } catch (error) {
            // A frame file gone (the coordinator removes a dropped connection's files): this connection's
            // frames cannot be followed any more, and a new one starts afresh.
            const reason = (error as Error).message;
            log(`worker ${name}: ${reason}; reconnecting`);
            finish({ kind: 'lost', reason, welcomed });
            return;
          }
          message = parseCoordinatorMessage(codec.decode(frame));
          await handle(message);
        } catch (error) {
          // A ring worker answers the `reduce` announced with a shard it could not compute accordingly.
          if (message?.type === 'compute') ring.member?.computeFailed(message.step, message.shard);
          const code = isCallosumError(error) ? error.code : ErrorCodes.COMPUTE_FAILED;
          const text = withRemedy(error instanceof Error ? error.message : String(error));
          log(`worker ${name}: ${code}: ${text}`);
          send({
            type: 'failure',
            code,
            message: text.slice(0, 4000),
            ...requestOf(message, failuresNameAttempt),
          });
          // Without a usable welcome (unknown model, other protocol) this worker cannot serve this run;
          // with a crashed compute thread it cannot serve any.
          const crashed = threadFailure(service);
          if (crashed !== undefined) finish({ kind: 'fatal', reason: crashed });
          else if (message === undefined || message.type === 'welcome')
            finish({ kind: 'fatal', reason: text });
        } finally {
          phase = 'idle';
        }
      }
      socket.on('close', (code, reason) => {
        clearInterval(heartbeat);
        resolve(
          settled ?? { kind: 'lost', reason: `closed with ${code} ${reason.toString()}`.trim(), welcomed },
        );
      });
      socket.on('error', (error: NodeJS.ErrnoException) => {
        // A certificate refused in the TLS handshake is refused again on every retry, and so is TLS
        // spoken to a port that does not speak it (OpenSSL reads its HTTP answer as a wrong version).
        settled ??= CERTIFICATE_ERRORS.has(error.code ?? '')
          ? {
              kind: 'fatal',
              reason: `TLS: ${error.message} (${error.code}): check --tls-ca, --tls-cert and --tls-key`,
            }
          : error.code === 'EPROTO' && /wrong version number/.test(error.message)
            ? {
                kind: 'fatal',
                reason: `TLS: the coordinator at ${settings.url} does not serve TLS: connect with ws:// instead, or start it with --tls-cert and --tls-key`,
              }
            : { kind: 'lost', reason: error.message, welcomed };
      });
      socket.on('unexpected-response', (_request, response) => {
        // 401 and 403: retrying with the same token or certificate cannot help.
        settled ??=
          response.statusCode === 401
            ? { kind: 'fatal', reason: tokenRefusal(settings.token !== undefined) }
            : response.statusCode === 403
              ? { kind: 'fatal', reason: certificateRefusal(response.statusMessage ?? '') }
              : response.statusCode === 400 && response.statusMessage === PLAIN_HTTP_TO_TLS_REASON
                ? {
                    kind: 'fatal',
                    reason: `the coordinator at ${settings.url} serves TLS: connect with wss:// (and --tls-ca if a private CA signed its certificate)`,
                  }
                : {
                    kind: 'lost',
                    reason: `HTTP ${response.statusCode} instead of a WebSocket upgrade`,
                    welcomed,
                  };
        socket.terminate();
      });

      async function handle(message: CoordinatorMessage): Promise<void> {
        switch (message.type) {
          case 'welcome': {
            if (message.protocol.major !== PROTOCOL_VERSION.major) {
              throw new CallosumError(
                ErrorCodes.VERSION_MISMATCH,
                `coordinator speaks protocol ${message.protocol.major}.${message.protocol.minor}, this worker ${PROTOCOL_VERSION.major}.${PROTOCOL_VERSION.minor}`,
              );
            }
            await service.configure(message);
            tensorFrames = readsTensorFrames(message.protocol);
            failuresNameAttempt = protocolAtLeast(message.protocol, FAILURE_ATTEMPT_PROTOCOL);
            nonFiniteMetrics = protocolAtLeast(message.protocol, NON_FINITE_METRICS_PROTOCOL);
            wireDtype = message.wireDtype ?? DEFAULT_WIRE_DTYPE;
            // On the coordinator's machine (its probe can be read): weights and gradients go as files.
            const probe = message.frameFiles === undefined ? undefined : readProbe(message.frameFiles);
            if (message.frameFiles !== undefined && probe !== undefined) {
              frameFiles = new FrameFileLink(message.frameFiles, 'to-coordinator', {
                maxFrameBytes: settings.maxMessageBytes,
                onFilesFailed: (reason) => log(`worker ${name}: ${reason}`),
              });
              send({ type: 'frame-files', probe });
              log(`worker ${name}: large frames go through files in ${message.frameFiles.dir}`);
            }
            if (message.topology === 'ring') {
              const address = await ring.join(message, send, localAddress, failuresNameAttempt);
              send({ type: 'peer-listening', address });
            } else {
              ring.leave();
            }
            welcomed = true;
            log(`worker ${name}: joined run ${message.runId} as ${message.workerId}`);
            clearInterval(heartbeat);
            heartbeat = setInterval(
              () => send({ type: 'heartbeat', phase: ring.member?.reducing ? 'reducing' : phase }),
              message.heartbeatIntervalMs,
            );
            return;
          }
          case 'weights': {
            const replaced = service.receiveWeights(
              message.version,
              floatsFromWire(message.weights, wireDtype),
            );
            if (replaced !== undefined) frameFiles?.recycle(replaced.buffer as ArrayBuffer);
            return;
          }
          case 'compute': {
            phase = 'computing';
            // Tells the coordinator this step's request arrived; compute blocks the heartbeat timer.
            send({ type: 'heartbeat', phase, step: message.step });
            const member = ring.member;
            if (member !== undefined) {
              // Ring: the gradient stays here for the reduction among the workers; the totals go back.
              const buffer = member.gradientBuffer(message.step);
              const { result, timings } = await service.computeGradient(message, buffer);
              requireFiniteTotals(result, stepLabel(message.step), nonFiniteMetrics);
              member.hold(message.step, message.shard, result);
              const { lossSum, correct, metricSums, count } = result;
              const totals = { lossSum, correct, metricSums: [...metricSums], count };
              send({ type: 'computed', step: message.step, shard: message.shard, ...totals, timings });
              stepsComputed += 1;
              return;
            }
            // For a 1.1 coordinator the gradient goes straight into the frame that carries it: read back
            // from the backend into it (float32), or rounded into it (16-bit).
            const frame = tensorFrames
              ? codec.startTensorFrame(service.parameterCount * TENSOR_DTYPES[wireDtype], spareGradientFrame)
              : undefined;
            spareGradientFrame = undefined;
            const { result, timings } = await service.computeGradient(
              message,
              frame && wireDtype === 'float32'
                ? new Float32Array(frame.payload.buffer, frame.payload.byteOffset, service.parameterCount)
                : undefined,
            );
            requireFiniteTotals(result, stepLabel(message.step), nonFiniteMetrics);
            phase = 'sending';
            // Throws NON_FINITE, reported as a failure of this shard, if the gradient overflows a float16.
            const reply = gradientReply(message, result, timings, wireDtype, frame?.payload);
            if (frame === undefined) sendFrame(codec.encode(reply));
            else if (sendFrame(frame.finish(reply, 'gradient'))) {
              spareGradientFrame = frame.payload.buffer as ArrayBuffer;
            }
            stepsComputed += 1;
            return;
          }
          case 'batch-norm': {
            if (message.step === settings.stopInBatchNormAt) {
              log(
                `worker ${name}: FAULT INJECTION: stopped in a BatchNormalization pass of ${stepLabel(message.step)}`,
              );
              process.kill(process.pid, 'SIGSTOP');
            }
            phase = 'computing';
            send({ type: 'heartbeat', phase, step: message.step });
            const { result, timings } = service.batchNormPass(message);
            phase = 'sending';
            const { step, pass, shard } = message;
            const { values, elements, count } = result;
            send({
              type: 'batch-norm-result',
              step,
              pass,
              shard,
              count,
              ...(elements === undefined ? {} : { elements }),
              values: toWireTensor(values, [values.length]),
              timings,
            });
            return;
          }
          case 'evaluate': {
            if (message.round === settings.stopInEvaluationAt) {
              log(`worker ${name}: FAULT INJECTION: stopped in evaluation round ${message.round}`);
              process.kill(process.pid, 'SIGSTOP');
            }
            phase = 'computing';
            const { result, timings } = service.evaluate(message);
            requireFiniteTotals(result, `evaluation round ${message.round}`, nonFiniteMetrics);
            phase = 'sending';
            const metricSums = [...result.metricSums];
            send({
              type: 'evaluation',
              round: message.round,
              shard: message.shard,
              ...result,
              metricSums,
              timings,
            });
            return;
          }
          case 'shutdown':
            finish(shutdownOutcome(message.code, message.reason));
            return;
          case 'replica':
            ring.joined().loadReplica(message);
            return;
          case 'reduce':
            ring.joined().reduce(message);
            return;
          case 'apply':
            ring.joined().apply(message);
            return;
          case 'state-request':
            send({
              type: 'replica-state',
              version: message.version,
              state: ring.joined().stateAt(message.version),
            });
            return;
        }
      }
    });
  }
}

/**
 * A loss or accuracy that came out NaN or Infinity is reported as a failure (its shard is redone, or the
 * run stops as diverged), never sent. The task's other metrics never touch the weights, and one that is
 * Infinity on some sample is still a figure to report: they are sent whatever they are to a coordinator
 * that takes that (`nonFiniteMetrics`, 1.12), and fail the shard as before with an older one.
 */
function requireFiniteTotals(totals: BatchTotals, what: string, nonFiniteMetrics: boolean): void {
  const figures: [string, number][] = [
    ['loss', totals.lossSum],
    ['accuracy', totals.correct],
    ...(nonFiniteMetrics
      ? []
      : totals.metricSums.map((sum, index): [string, number] => [`metric ${index}`, sum])),
  ];
  const bad = figures.find(([, value]) => !Number.isFinite(value));
  if (bad !== undefined) throw new CallosumError(ErrorCodes.NON_FINITE, `${what}: ${bad[0]} is ${bad[1]}`);
}

/** Why a worker's compute threads can no longer compute, once one has crashed. */
function threadFailure(service: GradientService | ThreadedGradientService): string | undefined {
  return service instanceof ThreadedGradientService ? service.failure : undefined;
}

/**
 * Which request a failure is about, so the coordinator can redo that shard, or abandon that reduction, at
 * once. A `reduce` names its attempt when the coordinator reads it (1.11); an `apply` never does, since a
 * replica that could not apply must be seen to, whichever attempt it was.
 */
function requestOf(
  message: CoordinatorMessage | undefined,
  failuresNameAttempt: boolean,
): Pick<Extract<WorkerMessage, { type: 'failure' }>, 'step' | 'pass' | 'round' | 'shard' | 'attempt'> {
  if (message?.type === 'compute') return { step: message.step, shard: message.shard };
  if (message?.type === 'batch-norm') return { step: message.step, pass: message.pass, shard: message.shard };
  if (message?.type === 'reduce')
    return { step: message.step, ...(failuresNameAttempt ? { attempt: message.attempt } : {}) };
  if (message?.type === 'apply') return { step: message.step };
  if (message?.type === 'evaluate') return { round: message.round, shard: message.shard };
  return {};
}

/**
 * How a connection to the coordinator ended: the run is over; it cannot go on (a bad setup, a refusal
 * that retrying will not change); or it was lost (was this worker welcomed first? was it refused for
 * now?), and the worker connects again with its backoff.
 */
type Outcome =
  | { kind: 'ended'; reason: string }
  | { kind: 'fatal'; reason: string }
  | { kind: 'lost'; reason: string; welcomed: boolean; refused?: true };

/**
 * What a shutdown means for this worker: a completed run ends it successfully; a coordinator that is
 * only stopping (it checkpointed, and a resumed one will listen again) is waited for like a lost
 * connection, as is one that cannot take this worker now (a full run, whose places free up as workers
 * leave, as a spare waits in an elastic job; or a cooldown after evicting it): it tries again with its
 * backoff, until it gives up. Anything else is a failure.
 */
function shutdownOutcome(code: string, reason: string): Outcome {
  if (code === ErrorCodes.RUN_ENDED) return { kind: 'ended', reason };
  if (code === ErrorCodes.COORDINATOR_STOPPING)
    return { kind: 'lost', reason: `coordinator stopping: ${reason}`, welcomed: true };
  if (code === ErrorCodes.RUN_FULL || code === ErrorCodes.EVICTION_COOLDOWN)
    return { kind: 'lost', reason: `${code}: ${reason}`, welcomed: false, refused: true };
  return { kind: 'fatal', reason: `${code}: ${reason}` };
}

/**
 * Node's codes for a TLS handshake that failed on a certificate (this side's verdict on the
 * coordinator's, or an alert about this worker's from a TLS server in front of the coordinator; the
 * coordinator itself answers 403): a fault of the setup, not the network.
 */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_PURPOSE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
]);

/** Why the coordinator answered 403: mutual TLS, and it did not accept this worker's certificate. */
function certificateRefusal(statusMessage: string): string {
  return (
    `the coordinator refused this worker's TLS client certificate (HTTP 403 ${statusMessage}): give --tls-cert ` +
    "and --tls-key a certificate signed by the CA of the coordinator's --tls-client-ca"
  );
}

/** Why the coordinator answered 401: the worker cannot tell a wrong token from a clock out of the window. */
function tokenRefusal(hasToken: boolean): string {
  return hasToken
    ? "the coordinator refused this worker's proof of the token (HTTP 401): the token is not the coordinator's, " +
        `this host's clock is more than ${AUTH_CLOCK_WINDOW_MS / 1000} s off the coordinator's, or the two speak different protocol major versions (its log says which)`
    : 'the coordinator requires a token (HTTP 401) and this worker has none: set CALLOSUM_TOKEN or --token-file';
}

/** A failure's message, with what to do when it is a kernel the backend lacks (an op of the task's model). */
function withRemedy(message: string): string {
  const missing = /Kernel '(\w+)' not registered for backend '(\w+)'/.exec(message);
  if (missing === null) return message;
  const instead =
    missing[2] === 'cpu'
      ? 'tfjs-node on their host'
      : '--backend cpu (slower), or with tfjs-node on their host';
  return `${message}: the ${missing[2]} backend cannot compute this model's ${missing[1]}; run the workers with ${instead}`;
}

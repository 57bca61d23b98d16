import { describe, expect, it } from 'vitest';
import { defaultThreads } from './cpu-budget.js';
import { resolveWorkerOptions, WORKER_DEFAULTS, type WorkerOptions } from './options.js';
import { runWorker } from './worker.js';

const url = 'ws://127.0.0.1:7070';
/** The shape of a PEM text (the options check no more; a TLS handshake checks the rest). */
const PEM = '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n';

describe('worker options', () => {
  it('apply the defaults to every option not set, and keep those that are', () => {
    expect(resolveWorkerOptions({ url })).toEqual({ url, ...WORKER_DEFAULTS, threads: defaultThreads() });
    expect(resolveWorkerOptions({ url, threads: 3 })).toMatchObject({ threads: 3 });
    // A Kubernetes pod IP on an IPv6 cluster comes bare, without brackets.
    expect(resolveWorkerOptions({ url, advertiseHost: 'fd00:10:244::7' })).toMatchObject({
      advertiseHost: 'fd00:10:244::7',
    });
    expect(resolveWorkerOptions({ url: 'wss://coordinator:443/run', giveUpAfterMs: 5 })).toMatchObject({
      url: 'wss://coordinator:443/run',
      giveUpAfterMs: 5,
      reconnectDelayMs: WORKER_DEFAULTS.reconnectDelayMs,
    });
  });

  it('refuse a wrong address, a non-positive timeout, contradictory delays and unknown options, naming the field', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { url: 'http://127.0.0.1:7070' },
        /url must be a ws:\/\/ or wss:\/\/ URL of the coordinator, got "http:/,
      ],
      [{ url: 'localhost:7070' }, /url must be a ws:\/\/ or wss:\/\/ URL/],
      [{ url: 'not a url' }, /url must be .*got "not a url"/],
      [{ url: undefined }, /url must be .*got undefined/],
      [{ url, giveUpAfterMs: -1 }, /giveUpAfterMs must be an integer >= 1, got -1/],
      [{ url, giveUpAfterMs: 0 }, /giveUpAfterMs must be an integer >= 1, got 0/],
      [{ url, reconnectDelayMs: -200 }, /reconnectDelayMs must be an integer >= 1, got -200/],
      [{ url, maxMessageBytes: 1.5 }, /maxMessageBytes must be an integer >= 1/],
      [{ url, peerPort: 70_000 }, /peerPort must be an integer/],
      [{ url, advertiseHost: 'two words' }, /advertiseHost must be a host name or IP address/],
      [{ url, advertiseHost: 'host:7071' }, /advertiseHost must be a host name or IP address/],
      [
        { url, reconnectDelayMs: 9_000 },
        /reconnectDelayMs must be at most maxReconnectDelayMs \(5000\), got 9000/,
      ],
      [{ url, threads: 0 }, /threads must be an integer in 1\.\.256, got 0/],
      [{ url, threads: 2.5 }, /threads must be an integer in 1\.\.256, got 2\.5/],
      [{ url, backend: 'gpu' }, /backend/],
      [{ url, giveUpAfter: 5 }, /giveUpAfter/],
      [{ url, peerTls: { ca: PEM, cert: PEM } }, /peerTls\.key/],
      [
        { url, token: 'short' },
        /token must be at least 16 characters long \(a coordinator refuses shorter ones\)/,
      ],
      // What a coordinator's hello refuses, every time (a worker would retry until it gave up).
      [
        { url, name: 'n'.repeat(257) },
        /name must be at most 256 characters long \(the protocol's limit\), got 257/,
      ],
      [{ url, name: '' }, /name must not be empty/],
      [
        { url, name: 'evil\ncoordinator: worker w9 (x) joined' },
        /name must not contain control characters, line separators or bidi overrides \(found \\n\): it is written into the coordinator's log/,
      ],
      [{ url, name: 'a\u202eb' }, /name must not contain .*\(found \\u202e\)/],
      [{ url, name: 'a\u001bb' }, /name must not contain .*\(found \\u001b\)/],
      // An empty PEM text is no CA: refused, not taken as none.
      [{ url, tls: { ca: '' } }, /tls\.ca is empty: expected a PEM text/],
      [{ url, tls: { ca: '  \n' } }, /tls\.ca is empty: expected a PEM text/],
      [{ url, tls: { ca: 'not a certificate' } }, /tls\.ca holds no PEM block/],
      [{ url, peerTls: { ca: '', cert: PEM, key: PEM } }, /peerTls\.ca is empty/],
    ];
    for (const [options, message] of cases) {
      expect(
        () => resolveWorkerOptions(options as unknown as WorkerOptions),
        JSON.stringify(options),
      ).toThrow(message);
      expect(() => resolveWorkerOptions(options as unknown as WorkerOptions)).toThrow(/^worker options: /);
    }
  });

  it('take a name of 256 characters of any script, with spaces and punctuation', () => {
    for (const name of ['pod-7 (gpu 0)', 'Überstunden:4', '作業者', 'n'.repeat(256)]) {
      expect(resolveWorkerOptions({ url, name })).toMatchObject({ name });
    }
  });

  it('are checked before the backend loads: runWorker fails at once, with nothing logged', async () => {
    const log: string[] = [];
    await expect(runWorker({ url: 'http://127.0.0.1:7070', log: (line) => log.push(line) })).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/url must be/) }),
    );
    expect(log).toEqual([]);
  });
});

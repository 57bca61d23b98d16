import { describe, expect, it } from 'vitest';
import { protocolHello } from '../test-support/protocol-worker.js';
import { type AdmissionContext, admissionRefusal } from './admission.js';

const run = (topology: 'star' | 'ring', peerTls: boolean): AdmissionContext => ({
  label: 'w (127.0.0.1:1)',
  topology,
  healthyWorkers: 0,
  maxWorkers: 4,
  task: { name: 'mnist/cnn', fingerprint: undefined },
  wireDtype: 'float32',
  syncBatchNorm: false,
  peerTls,
  cooldown: undefined,
});

describe('admission of TLS between ring peers', () => {
  it('refuses a ring worker whose peer links differ from the run, saying which side to change', () => {
    const plain = protocolHello(8);
    const withTls = { ...plain, peerTls: true as const };
    expect(admissionRefusal(withTls, run('ring', true))).toBeUndefined();
    expect(admissionRefusal(plain, run('ring', false))).toBeUndefined();
    const noTls = admissionRefusal(plain, run('ring', true));
    expect(noTls).toMatchObject({ code: 'PEER_TLS_MISMATCH', closeCode: 1002 });
    expect(noTls?.reason).toMatch(
      /reduce over TLS \(coordinator --peer-tls\); start the worker with --peer-tls-ca/,
    );
    expect(admissionRefusal(withTls, run('ring', false))?.reason).toMatch(
      /the worker reduces over TLS \(--peer-tls-ca\).*start the coordinator with --peer-tls/,
    );
    // A star run has no peer links: either kind of worker is welcome.
    expect(admissionRefusal(withTls, run('star', false))).toBeUndefined();
  });

  it('refuses a worker older than 1.8 from a --peer-tls run for its version, not for a flag it lacks', () => {
    expect(admissionRefusal(protocolHello(7), run('ring', true))).toMatchObject({
      code: 'VERSION_MISMATCH',
      reason: 'protocol 1.8 or later needed (TLS between ring peers (--peer-tls)); worker speaks 1.7',
    });
    expect(admissionRefusal(protocolHello(7), run('ring', false))).toBeUndefined();
  });
});

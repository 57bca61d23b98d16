import {
  allTrainable,
  createMsgpackCodec,
  DEFAULT_TRAINING_CONFIG,
  encodeCheckpoint,
  TrainingState,
  type WorkerMessage,
} from '@callosum/core';
import { describe, expect, it } from 'vitest';
import { PeerLinks } from './peer-links.js';
import { RingMember } from './ring-member.js';

// A ring member whose only peer cannot be reached: real links dialling a port nothing listens on.
// Whole workers reducing among themselves are in packages/cli/test/ring.test.ts.
describe('a ring member losing the link to a peer mid-reduction', () => {
  it.each([
    [true, { attempt: 2 }],
    [false, {}],
  ])(
    'reports PEER_LOST naming the attempt only to a coordinator that reads it (%s)',
    async (failuresNameAttempt, named) => {
      const layout = allTrainable(4);
      const state = new TrainingState(DEFAULT_TRAINING_CONFIG, new Float32Array(4), 1000, layout);
      const toCoordinator: WorkerMessage[] = [];
      let member: RingMember | undefined;
      const links = new PeerLinks({
        name: 'w1',
        token: undefined,
        tls: undefined,
        onLinkFailed: (address, reason) => member?.linkFailed(address, reason),
      });
      member = new RingMember({
        model: { layout, receiveWeights: () => {} },
        reduction: {},
        codec: createMsgpackCodec(),
        links,
        toCoordinator: (message) => toCoordinator.push(message),
        wireDtype: 'float32',
        failuresNameAttempt,
        log: () => {},
      });
      member.loadReplica({
        type: 'replica',
        version: 0,
        datasetSize: 1000,
        state: encodeCheckpoint(state.checkpoint()),
      });
      const gradient = member.gradientBuffer(0);
      member.hold(0, 0, { gradient, lossSum: 1, correct: 0, metricSums: [], count: 4 });
      member.reduce({
        type: 'reduce',
        step: 0,
        attempt: 2,
        rank: 0,
        samples: 8,
        shards: [
          { start: 0, end: 4, holder: 0 },
          { start: 4, end: 8, holder: 1 },
        ],
        peers: [
          { workerId: 'w1', address: '127.0.0.1:2' },
          { workerId: 'w2', address: '127.0.0.1:1' }, // nothing listens on port 1
        ],
      });
      await expect.poll(() => toCoordinator.length, { timeout: 10_000 }).toBe(1);
      expect(toCoordinator[0]).toEqual({
        type: 'failure',
        code: 'PEER_LOST',
        message: expect.stringMatching(/^step 1: lost the link to peer w2 at 127\.0\.0\.1:1: /),
        step: 0,
        ...named,
      });
      links.closeAll();
    },
  );
});

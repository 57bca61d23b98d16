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

/** A ring member at step 0 of a 4-parameter replica, with real peer links and what it told the coordinator. */
function memberAtStepZero(failuresNameAttempt: boolean) {
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
  const hold = (shard: number) =>
    member.hold(0, shard, {
      gradient: member.gradientBuffer(0),
      lossSum: 1,
      correct: 0,
      metricSums: [],
      count: 4,
    });
  /** Step 0's reduction over two shards held by ranks `holders`; this member is rank 0, rank 1 cannot be reached. */
  const reduce = (attempt: number, holders: [number, number]) =>
    member.reduce({
      type: 'reduce',
      step: 0,
      attempt,
      rank: 0,
      samples: 8,
      shards: [
        { start: 0, end: 4, holder: holders[0] },
        { start: 4, end: 8, holder: holders[1] },
      ],
      peers: [
        { workerId: 'w1', address: '127.0.0.1:2' },
        { workerId: 'w2', address: '127.0.0.1:1' }, // nothing listens on port 1
      ],
    });
  return { member, links, toCoordinator, hold, reduce };
}

// Real links dialling a port nothing listens on, so a reduction that starts fails with PEER_LOST.
// Whole workers reducing among themselves are in packages/cli/test/ring.test.ts.
describe('a ring member', () => {
  it.each([
    [true, { attempt: 2 }],
    [false, {}],
  ])(
    'losing the link to a peer mid-reduction reports PEER_LOST naming the attempt only to a coordinator that reads it (%s)',
    async (failuresNameAttempt, named) => {
      const { links, toCoordinator, hold, reduce } = memberAtStepZero(failuresNameAttempt);
      hold(0);
      reduce(2, [0, 1]);
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

  it('answers a reduction naming it the holder of a shard whose compute failed here without starting it, naming the attempt; once recomputed, the shard is reduced', async () => {
    const { member, links, toCoordinator, hold, reduce } = memberAtStepZero(true);
    hold(0);
    member.computeFailed(0, 1);
    // Announced with the step's requests: the compute failure, sent first, gave it up.
    reduce(0, [0, 0]);
    expect(member.reducing).toBe(false);
    expect(toCoordinator).toEqual([
      {
        type: 'failure',
        code: 'STALE_MESSAGE',
        message: 'step 1: the compute of shard 1 failed on this worker',
        step: 0,
        attempt: 0,
      },
    ]);
    // Sent to this worker again and computed: the next attempt starts (and fails on the unreachable peer).
    hold(1);
    reduce(1, [0, 0]);
    expect(member.reducing).toBe(true);
    await expect.poll(() => toCoordinator.length, { timeout: 10_000 }).toBe(2);
    expect(toCoordinator[1]).toMatchObject({ type: 'failure', code: 'PEER_LOST', step: 0, attempt: 1 });
    links.closeAll();
  });
});

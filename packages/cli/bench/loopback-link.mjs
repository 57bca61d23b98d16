/**
 * What messages cost on a loopback WebSocket, as Callosum sends them: frames carrying a float32 tensor,
 * encoded with the product's codec (createMsgpackCodec; `tensor` framing as the star's weights and
 * gradients travel, `plain` MessagePack as the ring's peer frames do), sent over a real `ws`
 * connection to another process (loopback-echo.mjs), decoded and read there, and answered with a small
 * frame. Two measurements:
 *
 * - round trips of frames of several sizes, one at a time, the sizes and framings interleaved so that a
 *   change in the machine's load falls on all of them alike: the scaling model's latency and cost per
 *   byte are fitted to these;
 * - bursts of small frames sent back to back, timed until the last answer: the cost of one more message
 *   at an end that handles many (the coordinator's control messages), without waiting on each.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createMsgpackCodec, toWireTensor } from '@callosum/core';
import WebSocket from 'ws';

const ECHO = fileURLToPath(new URL('loopback-echo.mjs', import.meta.url));
const FRAMINGS = ['tensor', 'plain'];
/** Small frames per burst. */
const BURST = 200;

/**
 * @param {object} options
 * @param {number[]} options.payloadBytes Tensor payload sizes for the round trips, multiples of 4.
 * @param {number} options.rounds Timed rounds; each times every size in both framings, and one burst.
 * @param {number} options.warmup Untimed rounds first.
 * @returns {Promise<{
 *   roundTrips: { framing: string, payloadBytes: number, frameBytes: number, roundTripMs: number[] }[],
 *   burstMessageMs: number[],
 * }>}
 */
export async function measureLoopback({ payloadBytes, rounds, warmup }) {
  const echo = fork(ECHO, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const [{ port }] = await once(echo, 'message');
    const socket = new WebSocket(`ws://127.0.0.1:${port}`, {
      perMessageDeflate: false,
      // As a worker's connections do: unmasked frames, sent without a copy.
      generateMask: (mask) => mask.fill(0),
    });
    await once(socket, 'open');
    const codec = createMsgpackCodec();
    const frameOf = (values, framing) =>
      codec.encode(
        { type: 'probe', tensor: toWireTensor(values, [values.length]) },
        { tensorFrame: framing === 'tensor' },
      );
    const answers = (count) =>
      new Promise((resolve) => {
        let left = count;
        const onMessage = () => {
          left -= 1;
          if (left > 0) return;
          socket.off('message', onMessage);
          resolve();
        };
        socket.on('message', onMessage);
      });

    const roundTrips = FRAMINGS.flatMap((framing) =>
      payloadBytes.map((bytes) => ({
        framing,
        payloadBytes: bytes,
        frameBytes: 0,
        values: Float32Array.from({ length: bytes / 4 }, (_, i) => Math.sin(i)),
        roundTripMs: [],
      })),
    );
    const small = new Float32Array(1);
    const burstMessageMs = [];
    for (let round = 0; round < warmup + rounds; round += 1) {
      const timed = round >= warmup;
      for (let k = 0; k < roundTrips.length; k += 1) {
        // A different size first in each round.
        const trip = roundTrips[(round + k) % roundTrips.length];
        const started = performance.now();
        const frame = frameOf(trip.values, trip.framing);
        const answered = answers(1);
        socket.send(frame);
        await answered;
        trip.frameBytes = frame.byteLength;
        if (timed) trip.roundTripMs.push(performance.now() - started);
      }
      const started = performance.now();
      const answered = answers(BURST);
      for (let i = 0; i < BURST; i += 1) socket.send(frameOf(small, 'plain'));
      await answered;
      if (timed) burstMessageMs.push((performance.now() - started) / BURST);
    }
    socket.close();
    return { roundTrips: roundTrips.map(({ values: _values, ...trip }) => trip), burstMessageMs };
  } finally {
    echo.disconnect();
  }
}

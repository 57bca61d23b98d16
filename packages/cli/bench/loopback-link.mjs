/**
 * What messages cost on a loopback WebSocket, as Callosum sends them: frames carrying a float32 tensor,
 * encoded with the product's codec (createMsgpackCodec; `tensor` framing as the star's weights and
 * gradients and the ring's peer rows travel, `plain` MessagePack for comparison), sent over a real `ws`
 * connection to another process (loopback-echo.mjs), decoded and read there, and answered with a small
 * frame. Each round measures, in this order:
 *
 * - pings: round trips of a small frame, one at a time, while both processes have only handled small
 *   frames (after a large frame, the next round trip also pays for the memory the large one left
 *   behind): half of one is the latency of a hop;
 * - round trips of frames of several sizes, one at a time, the sizes and framings in an order that
 *   rotates from round to round, so that a change in the machine's load falls on all of them alike: the
 *   slope of a line through them is what a byte costs the bare link;
 * - a burst of small frames sent back to back, timed until the last answer: the cost of one more message
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
/** Pings per round. */
const PINGS = 10;

/**
 * @param {object} options
 * @param {number[]} options.payloadBytes Tensor payload sizes for the round trips, multiples of 4.
 * @param {number} options.rounds Timed rounds; each times pings, every size in both framings, and a burst.
 * @param {number} options.warmup Untimed rounds first.
 * @returns {Promise<{
 *   pingMs: number[],
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
    const roundTrip = async (values, framing) => {
      const started = performance.now();
      const frame = frameOf(values, framing);
      const answered = answers(1);
      socket.send(frame);
      await answered;
      return { ms: performance.now() - started, frameBytes: frame.byteLength };
    };
    const pingMs = [];
    const burstMessageMs = [];
    for (let round = 0; round < warmup + rounds; round += 1) {
      const timed = round >= warmup;
      for (let ping = 0; ping < PINGS; ping += 1) {
        const { ms } = await roundTrip(small, 'plain');
        if (timed) pingMs.push(ms);
      }
      for (let k = 0; k < roundTrips.length; k += 1) {
        // A different size first in each round.
        const trip = roundTrips[(round + k) % roundTrips.length];
        const { ms, frameBytes } = await roundTrip(trip.values, trip.framing);
        trip.frameBytes = frameBytes;
        if (timed) trip.roundTripMs.push(ms);
      }
      const started = performance.now();
      const answered = answers(BURST);
      for (let i = 0; i < BURST; i += 1) socket.send(frameOf(small, 'plain'));
      await answered;
      if (timed) burstMessageMs.push((performance.now() - started) / BURST);
    }
    socket.close();
    return { pingMs, roundTrips: roundTrips.map(({ values: _values, ...trip }) => trip), burstMessageMs };
  } finally {
    echo.disconnect();
  }
}

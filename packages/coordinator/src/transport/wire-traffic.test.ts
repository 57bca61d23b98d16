import { describe, expect, it } from 'vitest';
import { meanStepBytes, stepBytes } from '../telemetry/step-bytes.js';
import { WireTraffic } from './wire-traffic.js';

describe('WireTraffic', () => {
  it('counts totals since the start, and per peer since the window started', () => {
    const traffic = new WireTraffic();
    traffic.sent('w1', 100);
    traffic.startWindow();
    traffic.sent('w1', 1_000);
    traffic.received('w1', 900);
    traffic.sent('w2', 1_000);
    traffic.received('w2', 1_500);
    traffic.received('w3', 20);
    expect(traffic.window).toEqual([
      { peer: 'w1', sent: 1_000, received: 900 },
      { peer: 'w2', sent: 1_000, received: 1_500 },
      { peer: 'w3', sent: 0, received: 20 },
    ]);
    expect([traffic.sentBytes, traffic.receivedBytes]).toEqual([2_100, 2_420]);
    // In the star, the coordinator moved everything; the busiest worker is the one that moved most.
    expect(stepBytes(traffic.window)).toEqual({ coordinator: 4_420, busiestWorker: 2_500 });
    traffic.startWindow();
    expect(traffic.window).toEqual([]);
    expect(stepBytes(traffic.window)).toEqual({ coordinator: 0, busiestWorker: 0 });
  });

  it('means per step are whole bytes, and NaN (null in JSON) over no steps', () => {
    expect(meanStepBytes({ coordinator: 10, busiestWorker: 5 }, 4)).toEqual({
      coordinator: 3,
      busiestWorker: 1,
    });
    expect(JSON.stringify(meanStepBytes({ coordinator: 0, busiestWorker: 0 }, 0))).toBe(
      '{"coordinator":null,"busiestWorker":null}',
    );
  });
});

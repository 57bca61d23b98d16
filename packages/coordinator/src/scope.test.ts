import { describe, expect, it } from 'vitest';
import { Scope } from './scope.js';

describe('Scope', () => {
  it('releases everything once, last created first, waiting for each release', async () => {
    const scope = new Scope();
    const released: string[] = [];
    scope.add(() => {
      released.push('model');
    });
    scope.add(async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      released.push('metrics');
    });
    scope.add(() => {
      released.push('server');
    });
    await scope.close();
    await scope.close();
    expect(released).toEqual(['server', 'metrics', 'model']);
  });
});

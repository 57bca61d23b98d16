/**
 * Resources of a run (server, files, timers, the model) register a release as they are created;
 * `close` releases them all, last created first, once.
 */
export class Scope {
  private readonly releases: (() => void | Promise<void>)[] = [];

  add(release: () => void | Promise<void>): void {
    this.releases.push(release);
  }

  async close(): Promise<void> {
    for (let release = this.releases.pop(); release !== undefined; release = this.releases.pop()) {
      await release();
    }
  }
}

import {
  CallosumError,
  type Codec,
  DEFAULT_WIRE_DTYPE,
  ErrorCodes,
  FRAME_OVERHEAD_BYTES,
  type Welcome,
  type WorkerMessage,
} from '@callosum/core';
import type { WorkerSettings } from './options.js';
import { PeerLinks } from './peer-links.js';
import { type PeerServer, startPeerServer } from './peer-server.js';
import { type ReplicaModel, RingMember } from './ring-member.js';

export interface RingPeersContext {
  readonly settings: Pick<
    WorkerSettings,
    'token' | 'peerTls' | 'peerPort' | 'advertiseHost' | 'corruptReplicaAt'
  >;
  /** This worker's name, proved to its peers with the token. */
  readonly name: string;
  readonly codec: Codec;
  readonly model: ReplicaModel;
  readonly log: (line: string) => void;
}

/**
 * Rows a peer may send in one frame, in chunks: a step's shards held by one worker (one, or the few
 * tree nodes covering its share of micro-batches; more after redone shards) over a chunk of at most
 * half the parameters.
 */
const MAX_ROWS_PER_FRAME_IN_PARAMETERS = 8;

/**
 * A worker's side of the ring topology across connections to the coordinator: the port it listens on
 * for its peers and the links it opens to them, both kept while the worker lives, and the member
 * (replica and reductions) of the run it was last welcomed to.
 */
export class RingPeers {
  private server: { parameterCount: number; peers: PeerServer } | undefined;
  private readonly links: PeerLinks;
  #member: RingMember | undefined;

  constructor(private readonly context: RingPeersContext) {
    this.links = new PeerLinks({
      name: context.name,
      token: context.settings.token,
      tls: context.settings.peerTls,
      onLinkFailed: (address, reason) => this.#member?.linkFailed(address, reason),
    });
  }

  /** The member of the ring run this worker was welcomed to; none in a star run. */
  get member(): RingMember | undefined {
    return this.#member;
  }

  /** The member, for a message that only a ring run's coordinator sends. */
  joined(): RingMember {
    if (this.#member === undefined) {
      throw new CallosumError(ErrorCodes.UNEXPECTED_MESSAGE, 'a ring message in a run that is not a ring');
    }
    return this.#member;
  }

  /**
   * Joins a ring run from its welcome: listens for peers (once; on `advertiseHost`, else on this
   * machine's address towards the coordinator) and starts a member with no replica yet. Returns the
   * address to tell the coordinator. `failuresNameAttempt`: the coordinator reads `failure.attempt` (1.11).
   */
  async join(
    welcome: Welcome,
    toCoordinator: (message: WorkerMessage) => void,
    localAddress: string | undefined,
    failuresNameAttempt: boolean,
  ): Promise<string> {
    const { settings, codec, log } = this.context;
    const parameterCount = welcome.parameterCount;
    this.#member = new RingMember({
      model: this.context.model,
      reduction: welcome,
      codec,
      links: this.links,
      toCoordinator,
      wireDtype: welcome.wireDtype ?? DEFAULT_WIRE_DTYPE,
      corruptReplicaAt: settings.corruptReplicaAt,
      failuresNameAttempt,
      log: (line) => log(`worker ${this.context.name}: ${line}`),
    });
    if (this.server?.parameterCount !== parameterCount) {
      await this.server?.peers.close();
      const host = settings.advertiseHost ?? localAddress ?? '127.0.0.1';
      const peers = await startPeerServer({
        host,
        port: settings.peerPort,
        token: settings.token,
        tls: settings.peerTls,
        maxPayload: parameterCount * 4 * MAX_ROWS_PER_FRAME_IN_PARAMETERS + FRAME_OVERHEAD_BYTES,
        codec,
        onMessage: (message, bytes) => this.#member?.receive(message, bytes),
        log: (line) => log(`worker ${this.context.name}: ${line}`),
      }).catch((error: NodeJS.ErrnoException) => {
        // The worker listens on the address it advertises: one this machine does not have is a mistake
        // in --advertise-host (retrying cannot give the machine that address).
        if (error.code === 'EADDRNOTAVAIL' && settings.advertiseHost !== undefined) {
          throw new CallosumError(
            ErrorCodes.INVALID_ARGUMENT,
            `--advertise-host ${settings.advertiseHost} is not an address of this machine: the worker listens ` +
              'for its ring peers on the address it advertises, so give one of its own addresses (or leave ' +
              `--advertise-host out to use its address towards the coordinator) (${error.message})`,
          );
        }
        throw error;
      });
      this.server = { parameterCount, peers };
      log(`worker ${this.context.name}: listening for ring peers at ${peers.address}`);
    }
    return this.server.peers.address;
  }

  /** Welcomed to a star run: no replica, no reductions (the peer port stays open for a later ring run). */
  leave(): void {
    this.#member = undefined;
  }

  async close(): Promise<void> {
    this.links.closeAll();
    await this.server?.peers.close();
  }
}

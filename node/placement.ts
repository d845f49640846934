import { createHash } from 'node:crypto';
import type { Member, Mesh } from '../gossip/index.ts';
import { PeerError } from './errors.ts';
import type { SpriteManager } from './sprites.ts';

/** Another peer's API, for a request this peer hands on. */
export interface PeerTarget {
  peer: string;
  api: string;
}

/** How long an arbiter keeps a name it placed elsewhere reserved, waiting for the record to arrive. */
const RESERVATION_MS = 30_000;

/**
 * Where things happen in a mesh without a scheduler: which peer arbitrates a new name
 * (rendezvous hashing over the live peers), which peer gets a new sprite (warm capacity from the
 * gossiped peer rows), and where an operation on an existing sprite runs (its owner, or here
 * after taking over from a dead owner).
 */
export class Placement {
  readonly #mesh: Mesh;
  readonly #sprites: SpriteManager;
  /** Names this peer arbitrated whose records have not reached its replica yet. */
  readonly #reserved = new Map<string, number>();

  constructor(mesh: Mesh, sprites: SpriteManager) {
    this.#mesh = mesh;
    this.#sprites = sprites;
  }

  /** The owner's API when `name` runs on another live peer; undefined when it runs here, is unknown, or was just taken over from a dead owner. */
  async ownerOf(name: string): Promise<PeerTarget | undefined> {
    const record = this.#sprites.lookup(name);
    if (!record || record.owner === this.#mesh.peerId) return undefined;
    const member = this.#mesh.members().find((m) => m.id === record.owner);
    if (!member || member.state === 'down') {
      await this.#sprites.adopt(name);
      return undefined;
    }
    if (!member.row.api) throw new PeerError('ERR_OWNER_UNREACHABLE', `sprite ${name} runs on peer ${record.owner}, whose API is not known yet`);
    return toTarget(member);
  }

  /**
   * The peers that decide whether `name` is free, best first: the live peers ranked by a hash of
   * (name, peer id), up to and excluding this peer (which decides when all before it fail to answer).
   */
  arbiters(name: string): PeerTarget[] {
    const ranked = this.#live()
      .map((member) => ({ member, score: createHash('sha256').update(name).update('\0').update(member.id).digest() }))
      .sort((a, b) => Buffer.compare(b.score, a.score));
    const targets: PeerTarget[] = [];
    for (const { member } of ranked) {
      if (member.self) break;
      targets.push(toTarget(member));
    }
    return targets;
  }

  /**
   * Where a new sprite goes: the peer the client asked (`origin`, for an arbiter) when its pool had
   * a warm sprite; else here when the local pool has one; else the least loaded open peer whose
   * gossiped row shows one (ties by id). With no warm sprite anywhere, a cold create: on the peer
   * asked, else here, else any open peer. 'here' means this peer; undefined: no peer can take it.
   */
  target(origin?: { peer: string; warm: boolean }): PeerTarget | 'here' | undefined {
    const open = this.#open();
    const asked = open.find((m) => m.id === origin?.peer);
    if (asked && origin?.warm) return toTarget(asked);
    if (this.warmHere()) return 'here';
    const chosen = open.find((m) => m.row.pool_ready > 0) ?? asked;
    if (chosen) return toTarget(chosen);
    if (!this.#sprites.closed) return 'here';
    return open[0] && toTarget(open[0]);
  }

  /** True when this peer takes sprites and its pool has a warm one now. */
  warmHere(): boolean {
    return !this.#sprites.closed && this.#sprites.poolStatus().ready > 0;
  }

  /** Where a drained sprite goes: the least loaded open peer. */
  handOffTarget(): PeerTarget | undefined {
    const chosen = this.#open()[0];
    return chosen && toTarget(chosen);
  }

  /**
   * Runs `create` (true when it created the sprite) as the arbiter of `name`: refuses a name that
   * exists or is being created, and keeps it reserved after a create elsewhere until the record
   * reaches this replica.
   */
  async arbitrate(name: string, create: () => Promise<boolean>): Promise<void> {
    if (this.#sprites.lookup(name) || (this.#reserved.get(name) ?? 0) > Date.now()) {
      throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${name} exists or is being created`);
    }
    this.#reserved.set(name, Number.POSITIVE_INFINITY);
    try {
      const created = await create();
      if (created && !this.#sprites.lookup(name)) this.#reserved.set(name, Date.now() + RESERVATION_MS);
      else this.#reserved.delete(name);
    } catch (error) {
      this.#reserved.delete(name);
      throw error;
    } finally {
      for (const [reserved, expiry] of this.#reserved) if (expiry <= Date.now()) this.#reserved.delete(reserved);
    }
  }

  /** Other live peers that take sprites (not draining, below capacity), least loaded first, ties by id. */
  #open(): Member[] {
    return this.#live()
      .filter((m) => !m.self && !m.row.drain && m.row.load < m.row.capacity)
      .sort((a, b) => a.row.load - b.row.load || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  #live(): Member[] {
    return this.#mesh.members().filter((m) => m.self || (m.state === 'alive' && m.row.api));
  }
}

function toTarget(member: Member): PeerTarget {
  return { peer: member.id, api: member.row.api };
}

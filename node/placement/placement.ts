import { createHash } from 'node:crypto';
import type { MemberState, PeerRow } from '../../gossip/index.ts';
import { PeerError } from '../errors.ts';

/** Another peer's link listener for its API (`https://host:port`), for a request this peer hands on. */
export interface PeerTarget {
  peer: string;
  link: string;
}

/** A member of the mesh as placement reads it: its state and the gossiped fields that decide. */
export interface PlacementMember {
  id: string;
  state: MemberState;
  self: boolean;
  row: Pick<PeerRow, 'link' | 'drain' | 'load' | 'capacity' | 'pool_ready'>;
}

/** The mesh as placement sees it: this peer's id and its view of the members. */
export interface PlacementMesh {
  readonly peerId: string;
  members(): PlacementMember[];
}

/** What placement needs of the sprite manager. */
export interface PlacementSprites {
  /** The sprite's record in this peer's replica, or undefined. */
  lookup(name: string): { owner: string } | undefined;
  /** Takes a sprite over from a dead owner. */
  adopt(name: string): Promise<unknown>;
  poolStatus(): { ready: number };
  /** True when this peer has room under its capacity for one more running sprite. */
  hasRoom(): boolean;
  /** True once this peer takes no new sprites (draining). */
  readonly closed: boolean;
}

/** What placement is built from. */
export interface PlacementComponents {
  mesh: PlacementMesh;
  sprites: PlacementSprites;
}

/**
 * Where things happen in a mesh without a scheduler: which peers arbitrate a new name
 * (rendezvous hashing over the live peers), which peer gets a new sprite (warm capacity from the
 * gossiped peer rows), where a drained sprite goes, and where an operation on an existing sprite
 * runs (its owner, or here after taking over from a dead owner). Decisions only: the create
 * protocol that acts on them is create.ts.
 */
export class Placement {
  readonly #mesh: PlacementMesh;
  readonly #sprites: PlacementSprites;

  constructor(components: PlacementComponents) {
    this.#mesh = components.mesh;
    this.#sprites = components.sprites;
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
    if (!member.row.link) throw new PeerError('ERR_OWNER_UNREACHABLE', `sprite ${name} runs on peer ${record.owner}, whose peer link is not known yet`);
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
   * asked, else here, else any open peer. Only peers with room under their capacity count; when
   * none has any, here (where the create waits for room or is refused). 'here' means this peer;
   * undefined: no peer can take it.
   */
  target(origin?: { peer: string; warm: boolean }): PeerTarget | 'here' | undefined {
    const open = this.#open();
    const asked = open.find((m) => m.id === origin?.peer);
    if (asked && origin?.warm) return toTarget(asked);
    if (this.warmHere()) return 'here';
    const chosen = open.find((m) => m.row.pool_ready > 0) ?? asked;
    if (chosen) return toTarget(chosen);
    if (this.#sprites.hasRoom()) return 'here';
    if (open[0]) return toTarget(open[0]);
    return this.#sprites.closed ? undefined : 'here';
  }

  /** True when this peer takes sprites, has room for one more and its pool has a warm one now. */
  warmHere(): boolean {
    return !this.#sprites.closed && this.#sprites.hasRoom() && this.#sprites.poolStatus().ready > 0;
  }

  /** Where a drained sprite goes: the least loaded open peer. */
  handOffTarget(): PeerTarget | undefined {
    const chosen = this.#open()[0];
    return chosen && toTarget(chosen);
  }

  /** Other live peers that take sprites (not draining, below capacity), least loaded first, ties by id. */
  #open(): PlacementMember[] {
    return this.#live()
      .filter((m) => !m.self && !m.row.drain && m.row.load < m.row.capacity)
      .sort((a, b) => a.row.load - b.row.load || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** This peer and the other peers that are alive and whose peer link is known. */
  #live(): PlacementMember[] {
    return this.#mesh.members().filter((m) => m.self || (m.state === 'alive' && m.row.link));
  }
}

/** The API link of a member, as a target for requests. */
export function toTarget(member: Pick<PlacementMember, 'id' | 'row'>): PeerTarget {
  return { peer: member.id, link: member.row.link ?? '' };
}

import type { SpriteRecord } from '../records/index.ts';
import type { SpriteSpec } from '../sprite-settings.ts';
import { PeerError } from '../errors.ts';
import { acceptArbitration, readHop, type Origin } from './hops.ts';
import type { PeerCall, PeerClient } from './peer-client.ts';
import type { Placement } from './placement.ts';

/** How long an arbiter keeps a name it placed elsewhere reserved, waiting for the record to arrive. */
const RESERVATION_MS = 30_000;

/** A new sprite as the client asked for it (every peer on the way parses the same body). */
export type CreateSpec = SpriteSpec;

/** What the create protocol needs of the sprite manager. */
export interface CreateSprites {
  /** The sprite's record in this peer's replica, or undefined. */
  lookup(name: string): unknown;
  /** Creates the sprite on this peer. */
  create(spec: CreateSpec): Promise<SpriteRecord>;
}

/** What the create protocol is built from. */
export interface CreateComponents {
  placement: Pick<Placement, 'arbiters' | 'target' | 'warmHere'>;
  sprites: CreateSprites;
  peers: Pick<PeerClient, 'arbitrateCreate' | 'placeCreate'>;
  /** This peer's id: the origin of creates its own clients ask for. */
  peerId: string;
}

/**
 * The create protocol of a mesh without a scheduler (see docs/MESH.md). A create from a client goes
 * to the name's arbiters in rank order until one acknowledges; this peer arbitrates itself when it
 * ranks first or every one before it is silent. The arbiter refuses a taken or reserved name,
 * places the sprite (here, or on the peer placement chooses) and keeps the name reserved until the
 * record reaches its replica. A create placed on this peer is created here, no questions asked.
 */
export class CreateFlow {
  readonly #components: CreateComponents;
  /** Names this peer arbitrated whose records have not reached its replica yet: expiry in wall-clock ms. */
  readonly #reserved = new Map<string, number>();

  constructor(components: CreateComponents) {
    this.#components = components;
  }

  /**
   * Serves a create that reached this peer. Returns the record when this peer created the sprite
   * (the caller answers 201 with it); undefined when the answer was relayed from another peer, or
   * the request was dropped (an arbiter reached after its deadline). Throws ERR_NAME_TAKEN when
   * this peer arbitrates and the name is taken, ERR_OWNER_UNREACHABLE never (a silent peer is
   * passed over), and whatever the local create throws.
   */
  async create(spec: CreateSpec, call: PeerCall): Promise<SpriteRecord | undefined> {
    const { placement, sprites, peers, peerId } = this.#components;
    const hop = readHop(call.req);
    if (hop?.role === 'place') return sprites.create(spec);
    // Only a create from a client or an arbiter goes on: any other hop (owner, adopt) is no create of this flow.
    if (hop && hop.role !== 'arbiter') throw new PeerError('ERR_FORBIDDEN', `a ${hop.role} hop does not create sprites`);
    let origin: Origin | undefined;
    if (hop?.role === 'arbiter') {
      if (!acceptArbitration(hop, call.req, call.res)) return undefined;
      origin = hop.origin;
    } else {
      // The arbiter places the sprite here when this peer has a warm sprite (and here, cold, if no peer has one).
      const asked = { peer: peerId, warm: placement.warmHere() };
      for (const arbiter of placement.arbiters(spec.name)) {
        try {
          await peers.arbitrateCreate(arbiter, call, asked);
          return undefined;
        } catch {
          // Silent or gone: the next peer in the name's ranking decides.
        }
      }
    }
    let record: SpriteRecord | undefined;
    await this.arbitrate(spec.name, async () => {
      const target = placement.target(origin);
      if (target && target !== 'here') {
        try {
          return await peers.placeCreate(target, call);
        } catch {
          // The chosen peer went away: create here instead.
        }
      }
      record = await sprites.create(spec);
      return true;
    });
    return record;
  }

  /**
   * Runs `create` (true when it created the sprite) as the arbiter of `name`: refuses a name that
   * exists or is being created (ERR_NAME_TAKEN), and keeps it reserved after a create elsewhere
   * until the record reaches this replica. A create that fails or declines releases the name.
   */
  async arbitrate(name: string, create: () => Promise<boolean>): Promise<void> {
    const { sprites } = this.#components;
    if (sprites.lookup(name) || (this.#reserved.get(name) ?? 0) > Date.now()) {
      throw new PeerError('ERR_NAME_TAKEN', `a sprite named ${name} exists or is being created`);
    }
    this.#reserved.set(name, Number.POSITIVE_INFINITY);
    try {
      const created = await create();
      if (created && !sprites.lookup(name)) this.#reserved.set(name, Date.now() + RESERVATION_MS);
      else this.#reserved.delete(name);
    } catch (error) {
      this.#reserved.delete(name);
      throw error;
    } finally {
      for (const [reserved, expiry] of this.#reserved) if (expiry <= Date.now()) this.#reserved.delete(reserved);
    }
  }
}

import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header that marks a request one peer's proxy forwarded to the owner's: `PEER SPRITE MAC`. */
export const HOP_HEADER = 'x-sprite-hop';

/** A verified hop: which peer sent it, for which sprite. */
export interface Hop {
  peer: string;
  sprite: string;
}

/**
 * Signs and checks hop headers with a secret every peer of the mesh derives from the swarm key, so
 * a client cannot pose as a peer (and have its X-Forwarded-* headers trusted). The MAC covers the
 * sending peer's id, so each peer's header differs and is computed once.
 */
export class HopSigner {
  readonly #secret: Buffer;
  readonly #peerId: string;
  readonly #mine: string;
  readonly #macs = new Map<string, Buffer>();

  constructor(secret: string | Buffer, peerId: string) {
    this.#secret = Buffer.from(secret);
    this.#peerId = peerId;
    this.#mine = this.#mac(peerId).toString('hex');
  }

  /** The header value this peer sends when forwarding a request for `sprite`. */
  header(sprite: string): string {
    return `${this.#peerId} ${sprite} ${this.#mine}`;
  }

  /** The hop a header value describes, or undefined when it is malformed or not signed by a mesh peer. */
  verify(value: string | string[] | undefined): Hop | undefined {
    if (typeof value !== 'string' || value.length > 300) return undefined;
    const [peer, sprite, mac, extra] = value.split(' ');
    if (!peer || !sprite || !mac || extra !== undefined || !/^[0-9a-f]{64}$/.test(mac)) return undefined;
    let expected = this.#macs.get(peer);
    if (!expected) {
      expected = this.#mac(peer);
      // Bounded: peer ids are few; a flood of made-up ids only refills the cache.
      if (this.#macs.size > 1024) this.#macs.clear();
      this.#macs.set(peer, expected);
    }
    return timingSafeEqual(expected, Buffer.from(mac, 'hex')) ? { peer, sprite } : undefined;
  }

  #mac(peer: string): Buffer {
    return createHmac('sha256', this.#secret).update(`sprite-proxy-hop:${peer}`).digest();
  }
}

import { createHmac, timingSafeEqual } from 'node:crypto';

/** Header that marks a request one peer's proxy forwarded to the owner's: `PEER SPRITE EXPIRY MAC`. */
export const HOP_HEADER = 'x-sprite-hop';

/** A hop header is good for this long after it was made (peers' clocks must agree this closely). */
export const HOP_TTL_MS = 10_000;

/** A verified hop: which peer sent it, for which sprite. */
export interface Hop {
  peer: string;
  sprite: string;
}

/**
 * Signs and checks hop headers with a secret every peer of the mesh derives from the swarm key.
 * Hops travel only over peer links (mutual TLS), and a header binds the sending peer, the sprite
 * and an expiry a few seconds ahead: one seen elsewhere opens no other sprite, comes from no other
 * peer, and is soon worthless. A sender reuses its header for a sprite for half its lifetime, so
 * the MAC costs one HMAC per sprite every few seconds, not one per request.
 */
export class HopSigner {
  readonly #secret: Buffer;
  readonly #peerId: string;
  /** This peer's current header per sprite, and when to make a new one (ms). */
  readonly #mine = new Map<string, { value: string; renew: number }>();
  /** Headers that checked out, and until when (ms): a hot sprite's header is checked once, not per request. */
  readonly #good = new Map<string, { hop: Hop; expiry: number }>();

  constructor(secret: string | Buffer, peerId: string) {
    this.#secret = Buffer.from(secret);
    this.#peerId = peerId;
  }

  /** The header value this peer sends when forwarding a request for `sprite`. */
  header(sprite: string, now = Date.now()): string {
    const cached = this.#mine.get(sprite);
    if (cached && cached.renew > now) return cached.value;
    const expiry = now + HOP_TTL_MS;
    const value = `${this.#peerId} ${sprite} ${expiry} ${this.#mac(this.#peerId, sprite, expiry).toString('hex')}`;
    // Bounded: one entry per sprite forwarded to; a mesh's sprites are many but finite, dropped wholesale past that.
    if (this.#mine.size > 4096) this.#mine.clear();
    this.#mine.set(sprite, { value, renew: now + HOP_TTL_MS / 2 });
    return value;
  }

  /**
   * The hop a header value describes, or undefined when it is malformed, not signed with the mesh's
   * secret, expired (or too far ahead), or sent by another peer than `linkPeer` (the peer the link's
   * client certificate names).
   */
  verify(value: string | string[] | undefined, linkPeer: string, now = Date.now()): Hop | undefined {
    if (typeof value !== 'string' || value.length > 400) return undefined;
    const good = this.#good.get(value);
    if (good) {
      if (good.expiry >= now && good.hop.peer === linkPeer) return good.hop;
      if (good.expiry < now) this.#good.delete(value);
      return undefined;
    }
    const [peer, sprite, expiryText, mac, extra] = value.split(' ');
    if (!peer || !sprite || !expiryText || !mac || extra !== undefined || peer !== linkPeer || !/^\d{1,15}$/.test(expiryText) || !/^[0-9a-f]{64}$/.test(mac)) return undefined;
    const expiry = Number(expiryText);
    if (expiry < now || expiry > now + 6 * HOP_TTL_MS) return undefined;
    if (!timingSafeEqual(this.#mac(peer, sprite, expiry), Buffer.from(mac, 'hex'))) return undefined;
    const hop = { peer, sprite };
    if (this.#good.size > 4096) this.#good.clear();
    this.#good.set(value, { hop, expiry });
    return hop;
  }

  #mac(peer: string, sprite: string, expiry: number): Buffer {
    return createHmac('sha256', this.#secret).update(`sprite-proxy-hop\n${peer}\n${sprite}\n${expiry}`).digest();
  }
}

import { createHmac, timingSafeEqual } from 'node:crypto';

/** The listener a request reached the mesh on: sessions made on one never open the other. */
export type Scheme = 'http' | 'https';

/**
 * Name of the login cookie per scheme. On HTTPS the `__Host-` prefix makes browsers refuse it
 * unless it is Secure, has Path=/ and no Domain: a sibling sprite cannot plant one for this host.
 * Plain HTTP cannot use the prefix (it needs Secure), so its cookie can be shadowed; sessions are
 * signed and bound to the sprite, so a planted one is simply not valid.
 */
export const SESSION_COOKIE: Readonly<Record<Scheme, string>> = { https: '__Host-sprite_auth', http: '__sprite_auth' };

/** How long a login session lasts, in seconds (7 days); the cookie's Max-Age is the same. */
export const SESSION_TTL_S = 7 * 24 * 3600;

const VERSION = 'v1';
const SESSION = /^v1\.([0-9a-f]{64})\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/;

/**
 * Signs and checks login sessions: `v1.<token hash>.<expiry>.<mac>`, the MAC (HMAC-SHA256 under a
 * key every peer derives from the swarm key) covering the token's hash, the sprite's name, the
 * scheme and the expiry. The store (mesh.db) holds token hashes but not the key, so reading it
 * opens nothing; a session names its token, so revoking the token ends it (the caller looks the
 * hash up on every request, through its cache). The sprite's name, not the full host, is bound:
 * peers with different domains must accept each other's hops.
 */
export class SessionSigner {
  readonly #key: Buffer;
  // Sessions already verified, by sprite, scheme and value: a MAC costs microseconds, a lookup
  // nanoseconds. Forged values are never remembered; the map is emptied when full.
  readonly #verified = new Map<string, { hash: string; expiresMs: number }>();
  readonly #max: number;

  constructor(secret: string | Buffer, max = 4096) {
    this.#max = max;
    // A key of its own, so a session MAC can never double as any other MAC made from the secret.
    this.#key = createHmac('sha256', secret).update('sprite-proxy-session-key').digest();
  }

  /** A session value for the token with SHA-256 `hash` on sprite `sprite` over `scheme`, valid for `ttlS`. */
  issue(hash: string, sprite: string, scheme: Scheme, now = Date.now(), ttlS = SESSION_TTL_S): string {
    const expires = (Math.floor(now / 1000) + ttlS).toString(36);
    return `${VERSION}.${hash}.${expires}.${this.#mac(hash, sprite, scheme, expires).toString('base64url')}`;
  }

  /** The token hash a session value stands for on `sprite` over `scheme`; undefined when forged, bound elsewhere or expired. */
  verify(value: string, sprite: string, scheme: Scheme, now = Date.now()): string | undefined {
    const key = `${scheme} ${sprite} ${value}`;
    const known = this.#verified.get(key);
    if (known !== undefined) {
      if (known.expiresMs > now) return known.hash;
      this.#verified.delete(key);
      return undefined;
    }
    const match = SESSION.exec(value);
    if (!match) return undefined;
    const [, hash, expires, mac] = match as unknown as [string, string, string, string];
    const expiresMs = Number.parseInt(expires, 36) * 1000;
    if (expiresMs <= now) return undefined;
    const given = Buffer.from(mac, 'base64url');
    const expected = this.#mac(hash, sprite, scheme, expires);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    if (this.#verified.size >= this.#max) this.#verified.clear();
    this.#verified.set(key, { hash, expiresMs });
    return hash;
  }

  #mac(hash: string, sprite: string, scheme: Scheme, expires: string): Buffer {
    return createHmac('sha256', this.#key).update(`${VERSION}\n${hash}\n${sprite}\n${scheme}\n${expires}`).digest();
  }
}

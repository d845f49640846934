import { ProxyError } from './errors.ts';

/** What the proxy knows of another peer's liveness (the mesh's failure detector). */
export type PeerState = 'alive' | 'suspect' | 'down';

/** A sprite as the proxy routes it. */
export interface SpriteRoute {
  name: string;
  /** The peer that runs it. */
  owner: string;
  /** Its org: whose tokens open its URL. */
  org: string;
  /** Who may open its URL: `sprite` or `public` (any other value fails closed). */
  urlAuth: string;
  /** Lifecycle state as recorded (`running`, `warm`, `cold`, `stopped`, `failed`). */
  state: string;
  /** Port inside the sprite that its URL serves. */
  httpPort: number;
  /** Why it failed, when it did. */
  reason: string | null;
}

/**
 * The mesh as the proxy routes it, given by node/ and kept current there: every call is a lookup
 * (the proxy calls it on every request), and a changed sprite is a new object.
 */
export interface RouteSource {
  /** This peer's id. */
  readonly peerId: string;
  /** The sprite named so, or undefined. */
  sprite(name: string): SpriteRoute | undefined;
  /** Where to forward to a peer's proxy (its plain HTTP listener), or undefined when it has none or it is not known yet. */
  peerTarget(peer: string): { host: string; port: number } | undefined;
  /** This peer's view of another peer; undefined when it was never seen. */
  peerState(peer: string): PeerState | undefined;
  /** Calls `listener` with a sprite's name whenever its record changes or goes; returns the unsubscribe. */
  onSpriteChange(listener: (name: string, gone: boolean) => void): () => void;
}

/** Where a peer's proxy listens, as gossiped in the `proxy` column of its peers row (JSON). */
export interface ProxyAddress {
  /** Plain HTTP listener, e.g. `http://127.0.0.1:7480`: what other peers forward to. */
  http: string;
  /** HTTPS listener, e.g. `https://127.0.0.1:7443`, or null when the peer has none. */
  https: string | null;
  /** Domain the peer serves sprite URLs under. */
  domain: string;
}

/** The `proxy` column value for an address. */
export function formatProxyColumn(address: ProxyAddress): string {
  return JSON.stringify(address);
}

/** Parses a `proxy` column; undefined for null, malformed or partial values (columns merge independently). */
export function parseProxyColumn(text: string | null | undefined): ProxyAddress | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<ProxyAddress>;
    if (typeof value.http !== 'string' || typeof value.domain !== 'string') return undefined;
    return { http: value.http, https: typeof value.https === 'string' ? value.https : null, domain: value.domain };
  } catch {
    return undefined;
  }
}

/** Where other peers forward to a proxy at `address`: its plain HTTP listener; undefined when that is not an http:// URL. */
export function forwardTarget(address: ProxyAddress): { host: string; port: number } | undefined {
  try {
    const url = new URL(address.http);
    if (url.protocol !== 'http:' || !url.hostname) return undefined;
    return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) };
  } catch {
    return undefined;
  }
}

/** The decision for one request: serve the sprite here, or forward it to its owner's proxy. */
export type Route =
  | { kind: 'local'; sprite: SpriteRoute }
  | { kind: 'remote'; sprite: SpriteRoute; owner: string; target: { host: string; port: number } };

/** Where requests for a sprite go, from the route source (no query per request). */
export class RouteTable {
  readonly #source: RouteSource;

  constructor(source: RouteSource) {
    this.#source = source;
  }

  /** The sprite's row, wherever it runs and whatever its owner's state: what URL auth is checked against first. */
  sprite(name: string): SpriteRoute | undefined {
    return this.#source.sprite(name);
  }

  /** Where a request for `name` goes; throws ERR_PROXY_SPRITE_NOT_FOUND or ERR_PROXY_OWNER_DOWN. */
  resolve(name: string): Route {
    const sprite = this.#source.sprite(name);
    if (!sprite) throw new ProxyError('ERR_PROXY_SPRITE_NOT_FOUND', `no sprite named ${name} in this mesh`);
    if (sprite.owner === this.#source.peerId) return { kind: 'local', sprite };
    // A row seen before this peer learned of its owner is treated like a silent owner (suspect).
    const state = this.#source.peerState(sprite.owner) ?? 'suspect';
    if (state === 'down') throw new ProxyError('ERR_PROXY_OWNER_DOWN', `sprite ${name} runs on peer ${sprite.owner}, which is down`, { retryAfter: 10 });
    const target = this.#source.peerTarget(sprite.owner);
    if (!target) throw new ProxyError('ERR_PROXY_OWNER_DOWN', `sprite ${name} runs on peer ${sprite.owner}, whose proxy address is not known here`, { retryAfter: 5 });
    return { kind: 'remote', sprite, owner: sprite.owner, target };
  }

  /** Whether `name` is a sprite of another peer that the failure detector marks down. */
  ownerDown(name: string): boolean {
    const sprite = this.#source.sprite(name);
    return sprite !== undefined && sprite.owner !== this.#source.peerId && this.#source.peerState(sprite.owner) === 'down';
  }
}

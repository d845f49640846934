import { materialize, peersTable, spritesTable, type CrdtStore, type Member, type MaterializedView, type MemberEvent, type MemberState, type RowOf } from '../gossip/index.ts';
import { ProxyError } from './errors.ts';

/** A sprites row as the proxy reads it. */
export type SpriteRow = RowOf<typeof spritesTable>;

/** What the proxy needs of the mesh: this peer's id, the replicated rows and the failure detector. */
export interface ProxyMesh {
  readonly peerId: string;
  readonly store: Pick<CrdtStore, 'all' | 'subscribe' | 'get'>;
  /** Every peer with a row, with this peer's view of its state. */
  members(): Member[];
  /** Calls `listener` on every member state change; returns the unsubscribe. */
  onMemberChange(listener: (event: MemberEvent) => void): () => void;
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

/** The decision for one request: serve the sprite here, or forward it to its owner's proxy. */
export type Route =
  | { kind: 'local'; sprite: SpriteRow }
  | { kind: 'remote'; sprite: SpriteRow; owner: string; target: { host: string; port: number } };

/**
 * The proxy's view of the mesh: sprites by name and peers by id, kept current by the store's
 * change events (no query per request), and member states kept current by the failure detector.
 */
export class RouteTable {
  readonly #mesh: ProxyMesh;
  #sprites: MaterializedView<string, SpriteRow> | undefined;
  #peers: MaterializedView<string, RowOf<typeof peersTable>> | undefined;
  readonly #states = new Map<string, MemberState>();
  readonly #targets = new WeakMap<object, { host: string; port: number } | null>();
  #unsubscribe: (() => void) | undefined;

  constructor(mesh: ProxyMesh) {
    this.#mesh = mesh;
  }

  /** Loads the views and follows changes until `stop`. */
  start(): void {
    this.#sprites = materialize(this.#mesh.store, spritesTable, (row) => row.name);
    this.#peers = materialize(this.#mesh.store, peersTable, (row) => row.id);
    this.#unsubscribe = this.#mesh.onMemberChange((event) => this.#states.set(event.id, event.to));
    for (const member of this.#mesh.members()) this.#states.set(member.id, member.state);
  }

  /** Stops following changes. */
  stop(): void {
    this.#sprites?.close();
    this.#peers?.close();
    this.#unsubscribe?.();
  }

  /** The sprite's row, or undefined. */
  sprite(name: string): SpriteRow | undefined {
    return this.#sprites?.map.get(name);
  }

  /** Every sprite name known now. */
  names(): IterableIterator<string> {
    return (this.#sprites?.map ?? new Map<string, SpriteRow>()).keys();
  }

  /** Where a request for `name` goes; throws ERR_PROXY_SPRITE_NOT_FOUND or ERR_PROXY_OWNER_DOWN. */
  resolve(name: string): Route {
    const sprite = this.sprite(name);
    if (!sprite) throw new ProxyError('ERR_PROXY_SPRITE_NOT_FOUND', `no sprite named ${name} in this mesh`);
    if (sprite.owner === this.#mesh.peerId) return { kind: 'local', sprite };
    // A row seen before this peer learned of its owner is treated like a silent owner (suspect).
    const state = this.#states.get(sprite.owner) ?? 'suspect';
    if (state === 'down') throw new ProxyError('ERR_PROXY_OWNER_DOWN', `sprite ${name} runs on peer ${sprite.owner}, which is down`, { retryAfter: 10 });
    const target = this.#target(sprite.owner);
    if (!target) throw new ProxyError('ERR_PROXY_OWNER_DOWN', `sprite ${name} runs on peer ${sprite.owner}, whose proxy address is not known here`, { retryAfter: 5 });
    return { kind: 'remote', sprite, owner: sprite.owner, target };
  }

  /** Whether `name` is a sprite of another peer that the failure detector marks down. */
  ownerDown(name: string): boolean {
    const sprite = this.sprite(name);
    return sprite !== undefined && sprite.owner !== this.#mesh.peerId && this.#states.get(sprite.owner) === 'down';
  }

  #target(peer: string): { host: string; port: number } | undefined {
    const row = this.#peers?.map.get(peer);
    if (!row) return undefined;
    // Rows are replaced, never mutated, so a parse is cached per row object.
    let target = this.#targets.get(row);
    if (target === undefined) {
      target = null;
      const address = parseProxyColumn(row.proxy);
      if (address) {
        try {
          const url = new URL(address.http);
          const port = Number(url.port || 80);
          if (url.protocol === 'http:' && url.hostname) target = { host: url.hostname.replace(/^\[|\]$/g, ''), port };
        } catch {
          target = null;
        }
      }
      this.#targets.set(row, target);
    }
    return target ?? undefined;
  }
}

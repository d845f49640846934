import { defineTable } from './store/schema.ts';

/**
 * The mesh's replicated records. Each row is written by the peer that owns it (its own `peers`
 * row, the sprites it runs), so concurrent writers of one row are the exception.
 */

/** One row per peer: where to reach it and what it offers; `heartbeat` is rewritten periodically. */
export const peersTable = defineTable({
  name: 'peers',
  primaryKey: ['id'],
  columns: {
    id: 'text',
    /** JSON array of multiaddrs (with /p2p/ suffix) other peers can dial. */
    addrs: 'text',
    /** Base URL of the peer's HTTP API. */
    api: 'text',
    /** The peer's edge proxy, once it has one: JSON `{http, https, domain}` (see proxy/routes.ts). */
    proxy: { type: 'text', nullable: true },
    pool_target: 'integer',
    pool_ready: 'integer',
    /** Sprites this peer is willing to run. */
    capacity: 'integer',
    /** Sprites it runs now. */
    load: 'integer',
    version: 'text',
    /** Wall-clock ms of the owner's last heartbeat (informational; liveness uses local receive times). */
    heartbeat: 'integer',
  },
});

/** One row per sprite in the mesh, written by its owner. */
export const spritesTable = defineTable({
  name: 'sprites',
  primaryKey: ['name'],
  columns: {
    name: 'text',
    /** Internal id: names its directory, volume and cgroup on the owner. */
    id: 'text',
    owner: 'text',
    /** Raised on every change of owner, so a stale owner can tell it lost the sprite. */
    epoch: 'integer',
    state: 'text',
    url_auth: { type: 'text', default: 'sprite' },
    /** Where the sprite's disk lives (a URL), once disks are in object storage. */
    volume: { type: 'text', nullable: true },
    http_port: 'integer',
    created: 'text',
    updated: 'text',
    reason: { type: 'text', nullable: true },
  },
});

/** API tokens, by SHA-256 hash (never the token itself). */
export const tokensTable = defineTable({
  name: 'tokens',
  primaryKey: ['hash'],
  columns: {
    hash: 'text',
    name: 'text',
    org: { type: 'text', default: 'admin' },
    created: 'text',
    revoked: { type: 'boolean', default: false },
  },
});

/**
 * TLS for sprite URLs, one row per domain, written by the first peer that needs it (the edge
 * proxy's mesh CA and wildcard certificate). CA, certificate and key share one column, so two peers
 * generating at once converge on one consistent bundle rather than a mix of both.
 */
export const proxyCertsTable = defineTable({
  name: 'proxy_certs',
  primaryKey: ['domain'],
  columns: {
    domain: 'text',
    /** JSON `{ca, caKey, cert, key}` in PEM: the mesh CA and its key (for renewal), the wildcard chain and key. */
    bundle: 'text',
    created: 'text',
  },
});

/** Every table of the mesh store. */
export const MESH_TABLES = [peersTable, spritesTable, tokensTable, proxyCertsTable] as const;

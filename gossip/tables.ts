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
    /** Drain progress: null, `draining` (no new sprites, moving its own away) or `drained`. */
    drain: { type: 'text', nullable: true },
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
    /** The organization the sprite belongs to (its creator's); rows from before orgs belong to `admin`. */
    org: { type: 'text', default: 'admin' },
    /** Where the sprite's disk lives (a URL), once disks are in object storage. */
    volume: { type: 'text', nullable: true },
    http_port: 'integer',
    /** The sprite's service definitions (JSON), mirrored by the owner so a peer taking over starts them too. */
    services: { type: 'text', nullable: true },
    created: 'text',
    updated: 'text',
    reason: { type: 'text', nullable: true },
  },
});

/**
 * API tokens, by SHA-256 hash (never the token itself). Rows are never deleted: revoking sets
 * `revoked`, so a revoked hash cannot come back through a stale replica.
 */
export const tokensTable = defineTable({
  name: 'tokens',
  primaryKey: ['hash'],
  columns: {
    hash: 'text',
    name: 'text',
    /** The organization whose sprites the token sees (and where sprites it creates go). */
    org: { type: 'text', default: 'admin' },
    /** Admin tokens see every org's sprites and manage orgs and tokens. */
    admin: { type: 'boolean', default: false },
    created: 'text',
    revoked: { type: 'boolean', default: false },
  },
});

/** Organizations (tenants): sprites and tokens belong to one. `admin` always exists. */
export const orgsTable = defineTable({
  name: 'orgs',
  primaryKey: ['name'],
  columns: {
    name: 'text',
    created: 'text',
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

/**
 * Base images new sprites can be created from, written by the peer that built one. The image
 * itself is a volume in the shared object store, so any peer sharing the store clones it.
 */
export const imagesTable = defineTable({
  name: 'images',
  primaryKey: ['name'],
  columns: {
    name: 'text',
    /** Id of the image volume in the object store (`img-<name>`); sprites clone its checkpoint v0. */
    volume: 'text',
    /** What it was built from, for listings: `busybox`, `dir /path`, `tar /path`, `debian bookworm`. */
    source: 'text',
    /** Bytes the image's ext4 takes (its written blocks). */
    bytes: 'integer',
    /** The peer that built it. */
    peer: 'text',
    created: 'text',
  },
});

/** Every table of the mesh store. */
export const MESH_TABLES = [peersTable, spritesTable, tokensTable, orgsTable, proxyCertsTable, imagesTable] as const;

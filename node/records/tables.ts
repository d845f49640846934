import { defineTable } from '../../gossip/index.ts';

/**
 * The peer's replicated records: every table of the mesh store except the membership's own
 * `peers`. Each row is written by the peer that owns it (the sprites it runs, the images it
 * built), so concurrent writers of one row are the exception. Only node/records/ reads or writes
 * these tables; everything else goes through the typed records beside this file.
 */

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
    /** Labels (a JSON array of strings), set on create and by PUT. */
    labels: { type: 'text', default: '[]' },
    /** Environment (a JSON object of strings) that API execs and services get, set on create. */
    environment: { type: 'text', default: '{}' },
    /** Memory and CPU limits chosen on create; null (rows from before): the running peer's own. */
    ram_mb: { type: 'integer', nullable: true },
    cpus: { type: 'real', nullable: true },
    /** The runtime version (sprite-init's code) of the sandbox it last started in. */
    version: { type: 'text', nullable: true },
    /** When it last became running, and warm (ISO times). */
    last_running_at: { type: 'text', nullable: true },
    last_warming_at: { type: 'text', nullable: true },
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
    /** The operator's quotas for this org (node/records/quotas.ts); null: the peer's default. */
    max_sprites: { type: 'integer', nullable: true },
    max_running: { type: 'integer', nullable: true },
    max_checkpoints: { type: 'integer', nullable: true },
    max_storage_bytes: { type: 'integer', nullable: true },
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

/**
 * Documents that must follow a sprite to whichever peer runs it (after a takeover, a drain or a
 * restart): its policies and its checkpoints' lineage, as JSON. Keyed by the sprite's id, so a new
 * sprite that reuses a name starts blank; written by the sprite's owner. Rows come through gossip,
 * so readers check the JSON (node/records/sprite-docs.ts) before using it.
 */
export const spriteDocsTable = defineTable({
  name: 'sprite_docs',
  primaryKey: ['sprite', 'kind'],
  columns: {
    /** The sprite's id (`SpriteRecord.id`). */
    sprite: 'text',
    /** What the document is: `policy/network`, `policy/privileges`, `policy/resources`, `lineage`. */
    kind: 'text',
    doc: 'text',
    updated: 'text',
  },
});

/** Every table of the records, in the order the store opens them. */
export const RECORD_TABLES = [spritesTable, tokensTable, orgsTable, proxyCertsTable, imagesTable, spriteDocsTable] as const;

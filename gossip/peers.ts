import { isMultiaddr, jsonText, numberIn, oneOf, originUrl, peerIdText, printable } from './rules.ts';
import { defineTable, type RowOf, type ValueCheck } from './store/schema.ts';

/**
 * The membership's own table: one row per peer, written only by that peer. Every other table of
 * the store is the caller's (see `MeshInit.tables`); this is the one the mesh itself needs.
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
    /** The peer's API link listener (mutual TLS between peers, see node/links/), once it listens: `https://host:port`. */
    link: { type: 'text', nullable: true },
    /** The peer's edge proxy, once it has one: JSON `{http, https, domain, link}` (see proxy/routes.ts). */
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

/** A peers row. */
export type PeerRow = RowOf<typeof peersTable>;

/** What a peer says about itself at each heartbeat, besides id, addresses and time. */
export type SelfDescription = Omit<PeerRow, 'id' | 'addrs' | 'heartbeat'>;

/**
 * The multiaddrs of a peers row. Tolerates an empty or malformed value: a row can be seen before
 * the version that wrote its addresses arrives (columns merge independently).
 */
export function parseAddrs(text: string): string[] {
  try {
    const addrs = JSON.parse(text) as unknown;
    return Array.isArray(addrs) ? addrs.filter((a): a is string => typeof a === 'string').slice(0, 16) : [];
  } catch {
    return [];
  }
}

const MAX_ADDRS = 16;
const anyOf = (...checks: ValueCheck[]): ValueCheck => (value) => (checks.some((check) => check(value) === undefined) ? undefined : checks[checks.length - 1]!(value));
/** A multiaddr that names the peer it reaches (the handshake then checks that peer's key). */
const dialable = (addr: unknown): boolean => isMultiaddr(addr) && /\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(addr as string);
const empty: ValueCheck = (value) => (value === '' ? undefined : 'is not empty');

/**
 * What a peers row from another peer may hold (see `withRules`): a real peer id, dialable
 * multiaddrs, an API that is a bare http(s) origin (another peer sends requests there, with
 * tokens), counts in range. `''` is what a column holds before its first write. The `proxy` column
 * is the node's (`MeshInit.peerRules` adds its rule).
 */
export const PEER_RULES: Readonly<Record<string, ValueCheck>> = Object.freeze({
  id: peerIdText,
  addrs: jsonText((value) => (Array.isArray(value) && value.length <= MAX_ADDRS && value.every(dialable) ? undefined : `is not a JSON array of at most ${MAX_ADDRS} multiaddrs ending in /p2p/<id>`)),
  api: anyOf(empty, originUrl(['http', 'https'])),
  /** The API's peer link: peers connect there with their link certificates (node/links/). */
  link: originUrl(['https']),
  pool_target: numberIn(0, 1_000_000),
  pool_ready: numberIn(0, 1_000_000),
  capacity: numberIn(0, 1_000_000),
  load: numberIn(0, 1_000_000),
  version: printable(64),
  drain: oneOf(['draining', 'drained']),
  heartbeat: numberIn(0, Number.MAX_SAFE_INTEGER),
});

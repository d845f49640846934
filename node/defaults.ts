// The peer's own defaults (the other units own theirs: MESH_DEFAULTS, PROXY_DEFAULTS, VM_DEFAULTS,
// VOLUMES_DEFAULTS, DEVICE_DEFAULTS). No imports beyond Node's, so the CLI reads them cheaply.
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Defaults of what node/ itself decides: where the peer lives, its pool, sprites and sleep. */
export const PEER_DEFAULTS = {
  /** The data dir's name under the home directory. */
  dataDirName: '.sprite',
  /** Where the API listens. */
  api: { host: '127.0.0.1', port: 7070 },
  /** Where the API's peer link listens (other peers only; its address is gossiped, so any port does). */
  apiLink: { host: '127.0.0.1', port: 0 },
  /** Where libp2p listens (next to the API's port). */
  listen: ['/ip4/127.0.0.1/tcp/7071'],
  pool: { depth: 2, fallback: 'cold', concurrency: 1, image: 'debian' },
  sprite: {
    capacity: 100,
    /** The port inside a sprite that its URL serves. */
    httpPort: 8080,
    /** The network policy a new sprite gets (see node/egress/policy-match.ts). */
    egressDefaultPolicy: 'allow-all',
    /** Host id disks store a sprite's root as; base images are owned by it, so it is fixed, not an option. */
    rootHostId: 100_000,
  },
  sleep: { warmAfterMs: 30_000, coldAfterMs: 600_000 },
  /** A peer joining a mesh waits this long for the mesh's proxy certificate before making its own. */
  joinCertWaitMs: 10_000,
} as const;

/** The data dir of the peer and the CLI on this machine: `SPRITE_DATA_DIR`, else `~/.sprite`. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['SPRITE_DATA_DIR'] || join(homedir(), PEER_DEFAULTS.dataDirName);
}

/** The API URL a CLI uses when `SPRITE_API` is unset: the peer's default API address. */
export const DEFAULT_API_URL = `http://${PEER_DEFAULTS.api.host}:${PEER_DEFAULTS.api.port}`;

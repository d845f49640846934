import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEBIAN_DEFAULTS, DEBIAN_SUITE, DEFAULT_IMAGE_MAX_BYTES, DEFAULT_LIMITS, type BaseImage, type Limits } from '../vm/index.ts';

/** What to do when a create finds the warm pool empty. */
export type PoolFallback = 'cold' | 'fail';

/** The peer's configuration: one section per unit, validated once and frozen. */
export interface PeerConfig {
  /** Where the peer keeps its token, records, images, volumes and sprite directories. */
  dataDir: string;
  api: { host: string; port: number };
  pool: {
    /** Number of warm sprites kept ready. */
    depth: number;
    fallback: PoolFallback;
    /** Sprites warmed at the same time while refilling. */
    concurrency: number;
    /** The image of warm sprites and of creates without `--image`, built on this peer's first start. */
    baseImage: BaseImage;
  };
  mesh: {
    /** libp2p listen multiaddrs. */
    listen: string[];
    /** Multiaddrs of peers to join through. */
    bootstrap: string[];
    /** Swarm key of the mesh to join; unset: the data dir's own key (created on first start). */
    swarmKeyFile: string | undefined;
    /** A peer silent this long is suspect (and pinged). */
    suspectAfterMs: number;
    /** A peer silent this long is down. */
    downAfterMs: number;
  };
  storage: {
    /** Where sprite disks live: `file://DIR` or `s3://bucket/prefix?endpoint=URL` (credentials from the AWS environment). */
    objectStore: string;
    /** Cap on the bytes of files (and of a tarball) a base image may be built from. */
    imageMaxBytes: number;
  };
  proxy: {
    /** Plain HTTP listener of the edge proxy; also what other peers forward requests to. */
    http: { host: string; port: number };
    /** HTTPS listener of the edge proxy (HTTP/2 with HTTP/1.1 fallback). */
    https: { host: string; port: number };
    /** Sprite URLs are `NAME.<domain>`; every peer of a mesh should use the same domain. */
    domain: string;
    /** Certificate and key files for `*.<domain>`; unset: the mesh CA's certificate (made on first start). */
    tlsCert: string | undefined;
    tlsKey: string | undefined;
  };
  sleep: {
    /** A sprite idle this long (no proxied request or connection, no exec or API use) is frozen: warm sleep. */
    warmAfterMs: number;
    /** A sprite idle this long is stopped, its disk flushed and unmounted: cold sleep. More than warmAfterMs. */
    coldAfterMs: number;
  };
  sprite: {
    /** Sprites this peer offers to run (gossiped for placement). */
    capacity: number;
    limits: Limits;
    /** Port inside the sprite that its URL serves. */
    httpPort: number;
    /** Host id that a sprite's root maps to (user-namespace remap); 65536 ids from there. */
    rootHostId: number;
  };
}

/** Options as given on the command line or by a test; anything missing takes its default. */
export interface PeerOptions {
  dataDir?: string;
  api?: string;
  poolDepth?: number;
  poolFallback?: PoolFallback;
  poolConcurrency?: number;
  limits?: Partial<Limits>;
  httpPort?: number;
  listen?: string[];
  bootstrap?: string[];
  swarmKeyFile?: string;
  capacity?: number;
  suspectAfterMs?: number;
  downAfterMs?: number;
  proxyHttp?: string;
  proxyHttps?: string;
  domain?: string;
  tlsCert?: string;
  tlsKey?: string;
  objectStore?: string;
  warmSleepAfterMs?: number;
  coldSleepAfterMs?: number;
  imageMaxBytes?: number;
  /** `debian` (debootstrap from `debianMirror`, falling back to busybox when that fails) or `busybox`. */
  baseImage?: 'debian' | 'busybox';
  debianSuite?: string;
  debianMirror?: string;
}

/** Defaults of every option. */
export const DEFAULTS = {
  dataDir: join(homedir(), '.sprite'),
  api: '127.0.0.1:7070',
  poolDepth: 2,
  poolFallback: 'cold' as PoolFallback,
  poolConcurrency: 1,
  baseImage: 'debian',
  httpPort: 8080,
  rootHostId: 100_000,
  listen: ['/ip4/127.0.0.1/tcp/7071'],
  capacity: 100,
  suspectAfterMs: 15_000,
  downAfterMs: 30_000,
  proxyHttp: '127.0.0.1:7480',
  proxyHttps: '127.0.0.1:7443',
  domain: 'sprites.localhost',
  warmSleepAfterMs: 30_000,
  coldSleepAfterMs: 600_000,
} as const;

/** The data dir a CLI on this machine uses by default: `SPRITE_DATA_DIR` or `~/.sprite`. */
export function defaultDataDir(): string {
  return process.env.SPRITE_DATA_DIR ?? DEFAULTS.dataDir;
}

/** Builds the frozen configuration; throws a message naming the bad option. */
export function buildConfig(options: PeerOptions): Readonly<PeerConfig> {
  const known = new Set(['dataDir', 'api', 'poolDepth', 'poolFallback', 'poolConcurrency', 'limits', 'httpPort', 'listen', 'bootstrap', 'swarmKeyFile', 'capacity', 'suspectAfterMs', 'downAfterMs', 'objectStore', 'imageMaxBytes', 'proxyHttp', 'proxyHttps', 'domain', 'tlsCert', 'tlsKey', 'warmSleepAfterMs', 'coldSleepAfterMs', 'baseImage', 'debianSuite', 'debianMirror']);
  for (const key of Object.keys(options)) if (!known.has(key)) throw new Error(`unknown option ${key}`);
  const api = parseAddress(options.api ?? DEFAULTS.api);
  const depth = options.poolDepth ?? DEFAULTS.poolDepth;
  if (!Number.isInteger(depth) || depth < 0 || depth > 64) throw new Error('pool depth must be an integer from 0 to 64');
  const fallback = options.poolFallback ?? DEFAULTS.poolFallback;
  if (fallback !== 'cold' && fallback !== 'fail') throw new Error('pool fallback must be cold or fail');
  const concurrency = options.poolConcurrency ?? DEFAULTS.poolConcurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 8) throw new Error('pool concurrency must be an integer from 1 to 8');
  const baseImage = baseImageSection(options);
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  if (!(limits.memoryBytes >= 16 * 1024 * 1024)) throw new Error('memory limit must be at least 16 MiB');
  if (!(limits.cpus > 0 && limits.cpus <= 64)) throw new Error('cpu limit must be more than 0 and at most 64');
  if (!Number.isInteger(limits.pids) || limits.pids < 16) throw new Error('pids limit must be an integer of at least 16');
  const httpPort = options.httpPort ?? DEFAULTS.httpPort;
  if (!Number.isInteger(httpPort) || httpPort < 1 || httpPort > 65535) throw new Error('http port must be 1-65535');
  const listen = options.listen?.length ? [...options.listen] : [...DEFAULTS.listen];
  const bootstrap = [...(options.bootstrap ?? [])];
  for (const addr of [...listen, ...bootstrap]) {
    if (!/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d{1,5}(\/p2p\/\w+)?$/.test(addr)) throw new Error(`${addr} is not a TCP multiaddr like /ip4/127.0.0.1/tcp/7071`);
  }
  const suspectAfterMs = options.suspectAfterMs ?? DEFAULTS.suspectAfterMs;
  const downAfterMs = options.downAfterMs ?? DEFAULTS.downAfterMs;
  if (!(Number.isInteger(suspectAfterMs) && suspectAfterMs > 0 && Number.isInteger(downAfterMs) && downAfterMs > suspectAfterMs)) {
    throw new Error('membership timeouts must be whole milliseconds with 0 < suspect < down');
  }
  const capacity = options.capacity ?? DEFAULTS.capacity;
  if (!Number.isInteger(capacity) || capacity < 0) throw new Error('capacity must be a whole number');
  const proxy = proxySection(options);
  const warmAfterMs = options.warmSleepAfterMs ?? DEFAULTS.warmSleepAfterMs;
  const coldAfterMs = options.coldSleepAfterMs ?? DEFAULTS.coldSleepAfterMs;
  if (!(Number.isInteger(warmAfterMs) && warmAfterMs >= 100 && Number.isInteger(coldAfterMs) && coldAfterMs > warmAfterMs)) {
    throw new Error('sleep times must be whole milliseconds with 100 <= warm < cold');
  }
  const dataDir = resolve(options.dataDir ?? defaultDataDir());
  const objectStore = options.objectStore ?? `file://${join(dataDir, 'objects')}`;
  if (!/^(file:\/\/\/|s3:\/\/[a-z0-9.-]+)/.test(objectStore)) throw new Error('object store must be file:///absolute/dir or s3://bucket[/prefix][?endpoint=URL]');
  const imageMaxBytes = options.imageMaxBytes ?? DEFAULT_IMAGE_MAX_BYTES;
  if (!Number.isSafeInteger(imageMaxBytes) || imageMaxBytes < 1024 * 1024) throw new Error('image size limit must be a whole number of bytes, at least 1 MiB');
  return deepFreeze({
    dataDir,
    api,
    pool: { depth, fallback, concurrency, baseImage },
    mesh: { listen, bootstrap, swarmKeyFile: options.swarmKeyFile === undefined ? undefined : resolve(options.swarmKeyFile), suspectAfterMs, downAfterMs },
    storage: { objectStore, imageMaxBytes },
    proxy,
    sleep: { warmAfterMs, coldAfterMs },
    sprite: { capacity, limits, httpPort, rootHostId: DEFAULTS.rootHostId },
  });
}

/** The base image: busybox, or a Debian suite from a mirror URL. */
function baseImageSection(options: PeerOptions): BaseImage {
  const kind = options.baseImage ?? DEFAULTS.baseImage;
  if (kind === 'busybox') return { kind };
  if (kind !== 'debian') throw new Error(`base image must be debian or busybox, got ${String(kind)}`);
  const suite = options.debianSuite ?? DEBIAN_DEFAULTS.suite;
  if (!DEBIAN_SUITE.test(suite)) throw new Error(`${suite} is not a Debian suite name`);
  const mirror = options.debianMirror ?? DEBIAN_DEFAULTS.mirror;
  if (!/^https?:\/\/[^\s/]+/.test(mirror)) throw new Error(`Debian mirror must be an http(s) URL, got ${mirror}`);
  return { kind, suite, mirror };
}

/** The proxy section: listen addresses, a domain of DNS labels, and both TLS files or neither. */
function proxySection(options: PeerOptions): PeerConfig['proxy'] {
  const domain = options.domain ?? DEFAULTS.domain;
  if (domain.length > 190 || !domain.split('.').every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label))) {
    throw new Error(`domain must be lowercase DNS labels like sprites.example.com, got ${domain}`);
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) throw new Error('TLS certificate and key files go together: give both or neither');
  return {
    http: parseAddress(options.proxyHttp ?? DEFAULTS.proxyHttp),
    https: parseAddress(options.proxyHttps ?? DEFAULTS.proxyHttps),
    domain,
    tlsCert: options.tlsCert === undefined ? undefined : resolve(options.tlsCert),
    tlsKey: options.tlsKey === undefined ? undefined : resolve(options.tlsKey),
  };
}

/** Parses `HOST:PORT` (`[v6]:PORT` for IPv6); port 0 picks a free one. */
export function parseAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new Error(`address must be HOST:PORT, got ${text}`);
  return { host: (match[1] ?? match[2])!, port };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

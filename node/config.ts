// The peer's frozen configuration, one section per unit, assembled from the options of ./options.ts.
import { join } from 'node:path';
import { MESH_DEFAULTS } from '../gossip/index.ts';
import type { BaseImage, DeviceOptions, Limits } from '../vm/index.ts';
import { PEER_DEFAULTS } from './defaults.ts';
import type { EgressDefault } from './egress/policy-match.ts';
import type { QuotaLimits } from './records/quotas.ts';
import { readOptions, type PeerOptions } from './options.ts';

// The options' type, for callers of this module.
export type { PeerOptions } from './options.ts';

/** The peer's configuration: one section per unit, validated once and frozen (options.ts documents each option). */
export interface PeerConfig {
  /** Where the peer keeps its token, records, images, volumes and sprite directories. */
  dataDir: string;
  api: { host: string; port: number };
  /** The API's peer link listener (mutual TLS, other peers only). */
  apiLink: { host: string; port: number };
  pool: {
    /** Number of warm sprites kept ready. */
    depth: number;
    /** What a create does when the pool is empty: create inline, or fail. */
    fallback: 'cold' | 'fail';
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
    /** Time between this peer's heartbeats: derived from suspectAfterMs. */
    heartbeatMs: number;
    /** Mean time between anti-entropy rounds. */
    syncIntervalMs: number;
    /** Connections kept to random live peers. */
    connections: number;
  };
  storage: {
    /** Where sprite disks live: `file://DIR` or `s3://bucket/prefix?endpoint=URL` (credentials from the AWS environment). */
    objectStore: string;
    /** Cap on the bytes of files (and of a tarball) a base image may be built from. */
    imageMaxBytes: number;
    /** The storage daemon's local cache budget, dirty units included. */
    cacheBytes: number;
    /** Block device settings of every disk. */
    device: Pick<DeviceOptions, 'mode' | 'softDirtyBytes' | 'hardDirtyBytes'>;
  };
  proxy: {
    /** Plain HTTP listener of the edge proxy. */
    http: { host: string; port: number };
    /** The proxy's peer link listener: what other peers' proxies forward requests to (mutual TLS). */
    link: { host: string; port: number };
    /** HTTPS listener of the edge proxy (HTTP/2 with HTTP/1.1 fallback). */
    https: { host: string; port: number };
    /** Sprite URLs are `NAME.<domain>`; every peer of a mesh should use the same domain. */
    domain: string;
    /** Certificate and key files for `*.<domain>`; unset: the mesh CA's certificate (made on first start). */
    tlsCert: string | undefined;
    tlsKey: string | undefined;
    /** How long the proxy waits for the mesh's certificate before making one: only a joining peer waits. */
    certWaitMs: number;
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
    /** Host id disks store a sprite's root as (65536 ids from there); a running sprite sees them in a host range of its own (vm/idmap.ts). */
    rootHostId: number;
    /** The network policy a sprite created here starts with. */
    egressDefaultPolicy: EgressDefault;
  };
  /** Every org's default quotas (an org's own, in the records, win); null: no limit. */
  quotas: QuotaLimits;
  /** Sprites' network (see docs/NETWORKING.md). */
  egress: {
    /** Off: sprites have loopback only. */
    on: boolean;
    /** The interface sprite traffic leaves through; unset: the default route's (resolved at start). */
    uplink: string | undefined;
    /** `auto` or an IPv4 CIDR. */
    range: string;
    /** Private CIDRs sprites may reach. */
    allowPrivate: string[];
    /** Per-sprite limit in each direction, bits per second; 0: none. */
    rateBitsPerSecond: number;
    /** Upstream resolver; unset: the first nameserver of /etc/resolv.conf (resolved at start). */
    dns: string | undefined;
  };
}

/** Builds the frozen configuration; throws a message naming the bad option. */
export function buildConfig(options: PeerOptions): Readonly<PeerConfig> {
  const v = readOptions(options);
  const dataDir = v.dataDir;
  return deepFreeze({
    dataDir,
    api: v.api,
    apiLink: v.apiLink,
    pool: {
      depth: v.poolDepth,
      fallback: v.poolFallback,
      concurrency: v.poolConcurrency,
      baseImage: v.baseImage === 'busybox' ? { kind: 'busybox' } : { kind: 'debian', suite: v.debianSuite, mirror: v.debianMirror },
    },
    mesh: {
      listen: v.listen,
      bootstrap: v.bootstrap,
      swarmKeyFile: v.swarmKeyFile,
      suspectAfterMs: v.suspectAfterMs,
      downAfterMs: v.downAfterMs,
      // Several heartbeats per suspect period, so short timeouts (tests) do not flag live peers.
      heartbeatMs: Math.min(MESH_DEFAULTS.heartbeatMs, Math.max(100, Math.floor(v.suspectAfterMs / 3))),
      syncIntervalMs: v.syncIntervalMs,
      connections: v.meshConnections,
    },
    storage: {
      objectStore: v.objectStore ?? `file://${join(dataDir, 'objects')}`,
      imageMaxBytes: v.imageMaxBytes,
      cacheBytes: v.cacheBytes,
      device: { mode: v.storageMode, softDirtyBytes: v.softDirtyBytes, hardDirtyBytes: v.hardDirtyBytes },
    },
    proxy: {
      http: v.proxyHttp,
      https: v.proxyHttps,
      link: v.proxyLink,
      domain: v.domain,
      tlsCert: v.tlsCert,
      tlsKey: v.tlsKey,
      // A joining peer waits for the mesh's certificate instead of making a competing one.
      certWaitMs: v.bootstrap.length > 0 ? PEER_DEFAULTS.joinCertWaitMs : 0,
    },
    sleep: { warmAfterMs: v.warmSleepAfterMs, coldAfterMs: v.coldSleepAfterMs },
    sprite: { capacity: v.capacity, limits: v.limits, httpPort: v.httpPort, rootHostId: PEER_DEFAULTS.sprite.rootHostId, egressDefaultPolicy: v.egressDefaultPolicy },
    quotas: { sprites: v.quotas.sprites ?? null, running: v.quotas.running ?? null, checkpoints: v.quotas.checkpoints ?? null, storage_bytes: v.quotas.storageBytes ?? null },
    egress: { on: v.egress === 'on', uplink: v.egressUplink, range: v.egressRange, allowPrivate: v.egressAllowPrivate, rateBitsPerSecond: v.egressRate, dns: v.egressDns },
  });
}

/** The swarm key file: the one given, or the data dir's own (made by the mesh on first start). */
export function swarmKeyPath(config: Readonly<PeerConfig>): string {
  return config.mesh.swarmKeyFile ?? join(config.dataDir, 'swarm.key');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

import { createHash, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type http from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Mesh } from '../gossip/index.ts';
import { createProxy, formatProxyColumn, parseBundle, ProxyError, spriteHost, type CertStore, type EdgeProxy, type LocalSprites } from '../proxy/index.ts';
import {
  createLogger, ensureBaseImage, ensureTools, ObjectVolumeStore, StorageDaemon, thawTree, type Egress, type Logger, type Progress, type ServiceWire,
} from '../vm/index.ts';
import { createApiServer, type ApiServers, type EdgeView } from './api/server.ts';
import { buildConfig, swarmKeyPath, type PeerConfig, type PeerOptions } from './config.ts';
import { loadOrCreate, lockDataDir, meshSecret, replaceFile, unlockDataDir } from './data-dir.ts';
import { Drain } from './drain.ts';
import { startEgress } from './egress/network.ts';
import { IdleTimer } from './idle.ts';
import { ImageManager } from './images.ts';
import { LinkIdentity, memberCheck } from './links/index.ts';
import { CreateFlow, HopKeys, PeerClient, Placement } from './placement/index.ts';
import { checkHost } from './preflight.ts';
import { progressPrinter, type ProgressPrinter } from './progress.ts';
import {
  edgeCerts, edgeRoutes, ensureAdminOrg, ImageRecords, CHECKED_RECORD_TABLES, linkCaStore, PROXY_COLUMN_RULE, registerPeerToken, rotatePeerToken, SpriteDocs, SpriteRecords, tokenCheck, type EdgeRoutes,
} from './records/index.ts';
import { SpriteManager } from './sprites.ts';
import type { PeerError } from './errors.ts';
import { OrgQuotas } from './quotas.ts';
import { Teardown } from './teardown.ts';

/** Version of the peer software. */
export const VERSION = '0.1.0';

/** A peer joining a mesh waits this long for the mesh's peer-link CA before making one. */
const PEER_LINK_CA_WAIT_MS = 10_000;

/** How often a peer looks for image volumes no image names (see ImageManager.sweep). */
const IMAGE_SWEEP_EVERY_MS = 6 * 3600_000;

/** A running peer. */
export interface Peer {
  config: Readonly<PeerConfig>;
  id: string;
  /** Base URL of the API, e.g. `http://127.0.0.1:7070`. */
  url: string;
  token: string;
  /** True when this start generated the token. */
  newToken: boolean;
  sprites: SpriteManager;
  mesh: Mesh;
  /** The edge proxy: sprite URLs, and each sprite's last-active time for the idle timer. */
  proxy: EdgeProxy;
  /** Sprites' network (veths, firewall); undefined with egress off. */
  egress: Egress | undefined;
  /** Stops the API, every sprite and the pool; safe to call twice. */
  stop(): Promise<void>;
}

/** Every part of a peer, built by `setup` and started by `run`. */
interface Parts {
  config: Readonly<PeerConfig>;
  logger: Logger;
  token: string;
  newToken: boolean;
  mesh: Mesh;
  registry: SpriteRecords;
  images: ImageManager;
  sprites: SpriteManager;
  drain: Drain;
  idle: IdleTimer;
  api: ApiServers;
  /** This peer's side of the peer links (certificate, CA). */
  link: LinkIdentity;
  routes: EdgeRoutes;
  proxy: EdgeProxy;
  egress: Egress | undefined;
  /** What this peer tells the mesh about its listeners, filled in as they open. */
  self: { api: string; link: string | null; proxy: string | null };
}

/**
 * Starts a peer: checks the host, prepares the data dir, image and pool, and serves the API.
 * `progress` shows how the first start's base image build goes. Whatever was started before a
 * failure is stopped again before the error reaches the caller.
 */
export async function startPeer(options: PeerOptions = {}, logger: Logger = createLogger(), progress?: ProgressPrinter): Promise<Peer> {
  const config = buildConfig(options);
  const teardown = new Teardown(logger);
  try {
    const parts = await setup(config, teardown, logger, progress);
    await run(parts, teardown);
    const { mesh, token, newToken, sprites, proxy, egress, self } = parts;
    return { config, id: mesh.peerId, url: self.api, token, newToken, sprites, mesh, proxy, egress, stop: () => teardown.run() };
  } catch (error) {
    await teardown.run();
    throw error;
  }
}

/**
 * Builds the parts in order, each from the ones before: data dir, token, base image and tools, the
 * storage daemon (a process of its own), the mesh and its records, the sprite manager and what
 * uses it, the API server and the edge proxy. Nothing serves or loops yet.
 */
async function setup(config: Readonly<PeerConfig>, teardown: Teardown, logger: Logger, progress?: ProgressPrinter): Promise<Parts> {
  await checkHost();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  await lockDataDir(config.dataDir);
  teardown.defer('data dir lock', () => unlockDataDir(config.dataDir));
  const { token, created: newToken } = await loadOrCreate(join(config.dataDir, 'token'), () => randomBytes(24).toString('base64url'));
  const image = await baseImage(config, logger, (text, percent) => progress?.update(text, percent)).finally(() => progress?.done());
  const toolsDir = await ensureTools(join(config.dataDir, 'tools'));

  const self: Parts['self'] = { api: '', link: null, proxy: null };
  const mesh = await Mesh.open({
    dataDir: config.dataDir, tables: CHECKED_RECORD_TABLES, peerRules: { proxy: PROXY_COLUMN_RULE }, listen: config.mesh.listen, bootstrap: config.mesh.bootstrap, swarmKeyFile: config.mesh.swarmKeyFile,
    membership: { suspectAfterMs: config.mesh.suspectAfterMs, downAfterMs: config.mesh.downAfterMs },
    heartbeatMs: config.mesh.heartbeatMs, syncIntervalMs: config.mesh.syncIntervalMs, connections: config.mesh.connections,
    logger: logger.child({ component: 'mesh' }),
    // Read at each heartbeat, once running: every part below exists by then.
    describe: () => ({
      api: self.api, link: self.link, proxy: self.proxy, pool_target: config.pool.depth, pool_ready: sprites.poolStatus().ready,
      capacity: config.sprite.capacity, load: sprites.load(), version: VERSION, drain: drain.state,
    }),
  });
  teardown.defer('mesh', () => mesh.stop());
  const id = mesh.peerId;
  const log = logger.child({ peer: id });

  const peerKey = createHash('sha256').update(config.dataDir).digest('hex').slice(0, 10);
  // Sprites frozen when a previous run was killed hold their disks' mounts until thawed, and the
  // previous storage daemon waits for those mounts before it exits: thaw before starting a new one.
  await thawTree(`/sprites/${peerKey}`);
  // Before the sprites, so every pool entry gets its veth; stopped after them.
  const egress = await startEgress(config, peerKey.slice(0, 6), log.child({ component: 'egress' }));
  if (egress) teardown.defer('egress', () => egress.stop());
  const storage = await StorageDaemon.start({
    dataDir: join(config.dataDir, 'storage'), objectStore: config.storage.objectStore, cacheBytes: config.storage.cacheBytes, device: config.storage.device,
  });
  teardown.defer('storage daemon', () => storage.stop());
  const volumes = new ObjectVolumeStore(storage);

  const registry = new SpriteRecords(mesh);
  registerPeerToken(mesh, token, id);
  ensureAdminOrg(mesh);
  const images = new ImageManager({
    records: new ImageRecords(mesh), volumes, dir: join(config.dataDir, 'images', 'build'), rootId: config.sprite.rootHostId, peerId: id,
    maxBytes: config.storage.imageMaxBytes, logger: log.child({ component: 'images' }),
  });
  const quotas = new OrgQuotas(mesh.store, config.quotas);
  const sprites = new SpriteManager({
    config, registry, docs: new SpriteDocs(mesh), quotas, volumes, image, images: (name) => images.get(name).volume, toolsDir, peerId: id, peerKey, egress,
    peerApi: (peer) => mesh.members().find((m) => m.id === peer)?.row.api, logger: log,
  });
  const placement = new Placement({ mesh, sprites });
  const members = memberCheck(mesh);
  teardown.defer('link members', () => members.close());
  const link = new LinkIdentity({ peerId: id, dir: join(config.dataDir, 'link'), store: linkCaStore(mesh), member: members.check, logger: log.child({ component: 'links' }) });
  teardown.defer('link identity', () => link.stop());
  const secret = await meshSecret(swarmKeyPath(config), 'hop');
  const peers = new PeerClient({ hops: new HopKeys(secret, id), link });
  teardown.defer('peer client', () => peers.close());
  const creates = new CreateFlow({ placement, sprites, peers, peerId: id });
  const drain = new Drain({
    sprites, placement, peers, logger: log.child({ component: 'drain' }),
    publish: (state) => mesh.publishSelf({ drain: state }),
  });
  const idle = new IdleTimer(config.sleep, {
    target: sprites, proxyActivity: (name) => proxy.activity(name), logger: log.child({ component: 'idle' }),
  });

  const routes = edgeRoutes(mesh);
  teardown.defer('proxy routes', () => routes.close());
  const certs = edgeCerts(mesh);
  const proxy = createProxy({
    http: config.proxy.http, https: config.proxy.https, domain: config.proxy.domain,
    tlsFiles: config.proxy.tlsCert && config.proxy.tlsKey ? { cert: config.proxy.tlsCert, key: config.proxy.tlsKey } : undefined,
    certWaitMs: config.proxy.certWaitMs,
    hopSecret: secret,
    sessionSecret: await meshSecret(swarmKeyPath(config), 'session'),
    link: { listen: config.proxy.link, tls: link },
    // A request for a sprite whose peer is down takes the sprite over here (see docs/MESH.md).
    rehome: async (name) => {
      await sprites.adopt(name);
    },
  }, {
    routes, certs, sprites: localSprites(sprites), logger: log.child({ component: 'proxy' }), tokens: tokenCheck(mesh.store),
  });
  // Built with its token subscription and connection pools: stopped even if it never listens.
  teardown.defer('proxy', () => proxy.stop());
  let current = token;
  // The data dir's file first: a crash between the two leaves the new token usable once the peer starts again.
  const rotateToken = async (): Promise<string> => {
    const next = randomBytes(24).toString('base64url');
    await replaceFile(join(config.dataDir, 'token'), `${next}\n`);
    rotatePeerToken(mesh, current, next, id);
    current = next;
    log.info('rotated this peer\'s admin token');
    return next;
  };
  const api = createApiServer({
    sprites, registry, edge: edgeView(proxy, certs), images, placement, creates, peers, drain, use: idle, mesh, quotas, hops: new HopKeys(secret, id), link, rotateToken, peerId: id,
    version: VERSION, logger: log.child({ component: 'api' }),
  });
  return { config, logger: log, token, newToken, mesh, registry, images, sprites, drain, idle, api, link, routes, proxy, egress, self };
}

/**
 * Starts each part's loop in order: the API first, so the mesh's first heartbeat carries its
 * address; the mesh; a catch-up with the mesh (which brings the peer-link CA); the links (this
 * peer's certificate, the API's link listener); the proxy, published at once so other peers can
 * forward to it; then the sprites and their timers. The teardown stack undoes them in reverse: a
 * stopping sprite manager refuses new work and lets what is under way finish, then the listeners
 * close.
 */
async function run(parts: Parts, teardown: Teardown): Promise<void> {
  const { config, logger, mesh, registry, images, sprites, drain, idle, api, link, proxy, self } = parts;
  self.api = await listen(api.server, config.api);
  teardown.defer('API', () => close(api.server));
  await mesh.start();
  await catchUp(mesh);
  // A peer joining a mesh waits for the mesh's link CA rather than making a competing one.
  await link.start(config.mesh.bootstrap.length > 0 ? PEER_LINK_CA_WAIT_MS : 0);
  const apiLink = api.link();
  self.link = (await listen(apiLink, config.apiLink)).replace(/^http:/, 'https:');
  teardown.defer('API link', () => close(apiLink));
  mesh.publishSelf({ link: self.link });
  self.proxy = formatProxyColumn(await proxy.start());
  mesh.publishSelf({ proxy: self.proxy });

  teardown.defer('sprites', () => sprites.stop());
  await sprites.start();
  // A destroyed sprite's use goes with it, so the idle timer's map stays bounded by the mesh.
  const unfollow = registry.watch((name, gone) => {
    if (gone) idle.forget(name);
  });
  teardown.defer('idle forgetting', unfollow);
  idle.start();
  teardown.defer('idle timer', () => idle.stop());
  // Image volumes left by failed builds or deletes anywhere in the mesh: looked for now and then.
  const sweepImages = (): void => void images.sweep().catch((error: unknown) => logger.warn('image volume sweep failed', { error: (error as Error).message }));
  sweepImages();
  const sweeper = setInterval(sweepImages, IMAGE_SWEEP_EVERY_MS);
  sweeper.unref();
  teardown.defer('image sweep', () => clearInterval(sweeper));
  teardown.defer('drain', () => drain.stop());
}

/** `sprite peer start`: runs a peer until SIGINT, SIGTERM or SIGHUP (its terminal closed). */
export async function runPeer(options: PeerOptions): Promise<void> {
  // Output is best effort: a peer whose terminal or supervisor is gone must still stop its sprites.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  const logger = createLogger();
  process.stdout.write('preparing the peer (the first start builds the base image)...\n');
  const peer = await startPeer(options, logger, progressPrinter(process.stdout, 'base image '));
  process.stdout.write(`peer ${peer.id} ready: API ${peer.url}, data ${peer.config.dataDir}\n`);
  const proxyAt = peer.proxy.address();
  if (proxyAt) {
    const example = proxyAt.https ?? proxyAt.http;
    const scheme = proxyAt.https ? 'https' : 'http';
    process.stdout.write(`proxy ${[proxyAt.http, proxyAt.https].filter(Boolean).join(' ')}: sprite URLs like ${scheme}://${spriteHost('NAME', proxyAt.domain, Number(new URL(example).port), scheme)}/\n`);
  }
  for (const addr of peer.mesh.addresses()) process.stdout.write(`join this mesh with: --bootstrap ${addr} --swarm-key ${swarmKeyPath(peer.config)}\n`);
  if (peer.newToken) process.stdout.write(`admin token (also in ${join(peer.config.dataDir, 'token')}): ${peer.token}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (signal !== 'SIGHUP') process.stdout.write('stopping: sprites are stopped and will start again with the peer\n');
      void peer.stop().then(resolve);
    };
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, stop);
  });
}

/**
 * The base image file, built on the first start. A Debian build that fails (no network, a bad
 * mirror) falls back to busybox so the peer still starts; the next start tries Debian again.
 */
async function baseImage(config: Readonly<PeerConfig>, logger: Logger, progress: Progress): Promise<string> {
  const init = { dir: join(config.dataDir, 'images'), rootId: config.sprite.rootHostId, progress };
  const wanted = config.pool.baseImage;
  try {
    return await ensureBaseImage({ ...init, source: wanted });
  } catch (error) {
    if (wanted.kind === 'busybox') throw error;
    const reason = (error as Error).message;
    logger.warn('debian base image failed: using busybox', { mirror: wanted.mirror, suite: wanted.suite, error: reason });
    progress(`debian base image failed (${reason}); warm sprites use busybox until a start succeeds in building it`);
    return ensureBaseImage({ ...init, source: { kind: 'busybox' } });
  }
}

/**
 * Waits (briefly) for a connection to the mesh and pulls what changed while this peer was away,
 * so sprites that another peer took over meanwhile are not started here again.
 */
async function catchUp(mesh: Mesh): Promise<void> {
  if (mesh.members().every((member) => member.self)) return;
  const deadline = Date.now() + 10_000;
  while (mesh.health().connections === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  await mesh.syncAll();
}

/** The sprite manager as the proxy sees it: sockets of running sprites, wake as the wake path. */
function localSprites(manager: SpriteManager): LocalSprites {
  return {
    httpSocket: (name) => {
      try {
        return manager.httpSocket(name);
      } catch {
        return undefined;
      }
    },
    // A URL wakes sleeping sprites and, as it always has, starts a stopped one; past the org's running quota the page says 429.
    start: (name) => manager.wake(name, { stopped: true }).catch((error: unknown) => {
      const { code, message, details } = error as PeerError;
      if (code === 'ERR_QUOTA_EXCEEDED') throw new ProxyError('ERR_PROXY_QUOTA', message, { cause: error, retryAfter: Number(details?.retry_after_seconds) || undefined });
      throw error;
    }),
    servesHttp: async (name) => {
      const services = await manager.control(name).call<ServiceWire[]>({ op: 'services.list' });
      return services.some((service) => service.http_port !== null);
    },
  };
}

/**
 * The edge proxy as the API shows it: its addresses, and the mesh CA stored for its domain (also
 * when this peer serves a certificate from files), once it listens.
 */
function edgeView(proxy: EdgeProxy, certs: CertStore): EdgeView {
  return {
    address: () => proxy.address(),
    ca: () => {
      const domain = proxy.address()?.domain;
      return (domain === undefined ? undefined : parseBundle(certs.get(domain))?.ca) ?? null;
    },
  };
}

/** Listens on `at` and resolves with the API's base URL. */
async function listen(server: http.Server | https.Server, at: { host: string; port: number }): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: unknown) => {
    throw new Error(`cannot listen on ${at.host}:${at.port}: ${(error as Error).message}`, { cause: error });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}

/** Closes the API server and cuts its open connections (WebSockets, followed logs). */
async function close(server: http.Server | https.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

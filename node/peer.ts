import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Mesh } from '../gossip/index.ts';
import { createProxy, formatProxyColumn, spriteHost, type EdgeProxy, type LocalSprites } from '../proxy/index.ts';
import { ObjectVolumeStore, StorageDaemon, ensureBaseImage, ensureTools, thawTree, type Progress, type ServiceStatus } from '../vm/index.ts';
import { createApiServer } from './api/server.ts';
import { buildConfig, type PeerConfig, type PeerOptions } from './config.ts';
import { IdleTimer } from './idle.ts';
import { createLogger, type Logger } from '../vm/index.ts';
import { progressPrinter, type ProgressPrinter } from './progress.ts';
import { Drain } from './drain.ts';
import { CreateFlow, PeerClient, Placement } from './placement/index.ts';
import { checkHost } from './preflight.ts';
import { ImageManager } from './images.ts';
import { SpriteManager } from './sprites.ts';
import { edgeCerts, edgeRoutes, ensureAdminOrg, ImageRecords, RECORD_TABLES, registerPeerToken, SpriteRecords, tokenCheck } from './records/index.ts';

/** Version of the peer software. */
export const VERSION = '0.1.0';

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
  /** Stops the API, every sprite and the pool; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts a peer: checks the host, prepares the data dir, image and pool, and serves the API.
 * `progress` shows how the first start's base image build goes.
 */
export async function startPeer(options: PeerOptions = {}, logger: Logger = createLogger(), progress?: ProgressPrinter): Promise<Peer> {
  const config = buildConfig(options);
  await checkHost();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  await lockDataDir(config.dataDir);
  const { token, created: newToken } = await loadOrCreate(join(config.dataDir, 'token'), () => randomBytes(24).toString('base64url'));
  const image = await baseImage(config, logger, (text, percent) => progress?.update(text, percent)).finally(() => progress?.done());
  const toolsDir = await ensureTools(join(config.dataDir, 'tools'));
  let apiUrl = '';
  let sprites: SpriteManager | undefined;
  let proxyColumn: string | null = null;
  let drain: Drain | undefined;
  const mesh = await Mesh.open({
    dataDir: config.dataDir, tables: RECORD_TABLES, listen: config.mesh.listen, bootstrap: config.mesh.bootstrap, swarmKeyFile: config.mesh.swarmKeyFile,
    membership: { suspectAfterMs: config.mesh.suspectAfterMs, downAfterMs: config.mesh.downAfterMs },
    heartbeatMs: config.mesh.heartbeatMs, syncIntervalMs: config.mesh.syncIntervalMs, connections: config.mesh.connections,
    logger: logger.child({ component: 'mesh' }),
    describe: () => ({
      api: apiUrl, proxy: proxyColumn, pool_target: config.pool.depth, pool_ready: sprites?.poolStatus().ready ?? 0,
      capacity: config.sprite.capacity, load: sprites?.load() ?? 0, version: VERSION, drain: drain?.state ?? null,
    }),
  });
  const id = mesh.peerId;
  const log = logger.child({ peer: id });
  const peerKey = createHash('sha256').update(config.dataDir).digest('hex').slice(0, 10);
  // Sprites frozen when a previous run was killed hold their disks' mounts until thawed, and the
  // previous storage daemon waits for those mounts before it exits: thaw before starting a new one.
  await thawTree(`/sprites/${peerKey}`);
  const storage = await StorageDaemon.start({
    dataDir: join(config.dataDir, 'storage'), objectStore: config.storage.objectStore, cacheBytes: config.storage.cacheBytes, device: config.storage.device,
  });
  const volumes = new ObjectVolumeStore(storage);
  const registry = new SpriteRecords(mesh);
  const images = new ImageManager({
    records: new ImageRecords(mesh), volumes, dir: join(config.dataDir, 'images', 'build'), rootId: config.sprite.rootHostId, peerId: id,
    maxBytes: config.storage.imageMaxBytes, logger: log.child({ component: 'images' }),
  });
  sprites = new SpriteManager({
    config, registry, volumes, image, images: (name) => images.get(name).volume, toolsDir, peerId: id, peerKey,
    peerApi: (peer) => mesh.members().find((m) => m.id === peer)?.row.api, logger: log,
  });
  registerPeerToken(mesh, token, id);
  ensureAdminOrg(mesh);
  const placement = new Placement({ mesh, sprites });
  const peers = new PeerClient();
  const creates = new CreateFlow({ placement, sprites, peers, peerId: id });
  drain = new Drain({
    sprites, placement, token, logger: log.child({ component: 'drain' }),
    publish: (state) => mesh.publishSelf({ drain: state }),
  });
  let proxy: EdgeProxy | undefined;
  const idle = new IdleTimer(config.sleep, {
    target: sprites, proxyActivity: (name) => proxy?.activity(name), logger: log.child({ component: 'idle' }),
  });
  const edge = { address: () => proxy?.address(), ca: () => proxy?.ca() ?? null };
  const server = createApiServer({ sprites, registry, edge, images, placement, creates, peers, drain, use: idle, mesh, token, peerId: id, version: VERSION, logger: log.child({ component: 'api' }) });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.api.port, config.api.host, () => resolve());
    });
  } catch (error) {
    mesh.store.close();
    await storage.stop();
    await unlockDataDir(config.dataDir);
    throw new Error(`cannot listen on ${config.api.host}:${config.api.port}: ${(error as Error).message}`);
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  apiUrl = `http://${host}:${address.port}`;
  await mesh.start();
  const manager = sprites;
  const routes = edgeRoutes(mesh);
  proxy = createProxy({
    http: config.proxy.http, https: config.proxy.https, domain: config.proxy.domain,
    tlsFiles: config.proxy.tlsCert && config.proxy.tlsKey ? { cert: config.proxy.tlsCert, key: config.proxy.tlsKey } : undefined,
    certWaitMs: config.proxy.certWaitMs,
    hopSecret: await hopSecret(config),
    // A request for a sprite whose peer is down takes the sprite over here (see docs/MESH.md).
    rehome: async (name) => {
      await manager.adopt(name);
    },
  }, {
    routes, certs: edgeCerts(mesh), sprites: localSprites(manager), logger: log.child({ component: 'proxy' }),
    tokens: tokenCheck(mesh.store),
  });
  try {
    proxyColumn = formatProxyColumn(await proxy.start());
  } catch (error) {
    routes.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await storage.stop();
    await mesh.stop();
    await unlockDataDir(config.dataDir);
    throw error;
  }
  // Publish the proxy now rather than at the next heartbeat, so other peers can forward at once.
  mesh.publishSelf({ proxy: proxyColumn });
  await catchUp(mesh);
  await sprites.start();
  // Image volumes left by failed builds or deletes anywhere in the mesh: looked for now and then.
  const sweepImages = (): void => void images.sweep().catch((error: unknown) => log.warn('image volume sweep failed', { error: (error as Error).message }));
  sweepImages();
  const sweeper = setInterval(sweepImages, IMAGE_SWEEP_EVERY_MS);
  sweeper.unref();
  // A destroyed sprite's use goes with it, so the idle timer's map stays bounded by the mesh.
  const unfollow = registry.watch((name) => {
    if (!registry.get(name)) idle.forget(name);
  });
  idle.start();
  const edgeProxy = proxy;
  let stopping: Promise<void> | undefined;
  return {
    config, id, url: apiUrl, token, newToken, sprites: manager, mesh, proxy: edgeProxy,
    stop: () => {
      stopping ??= (async () => {
        drain!.stop();
        idle.stop();
        unfollow();
        clearInterval(sweeper);
        await edgeProxy.stop();
        routes.close();
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        peers.close();
        await manager.stop();
        await storage.stop();
        await mesh.stop();
        await unlockDataDir(config.dataDir);
      })();
      return stopping;
    },
  };
}

/** `sprite peer start`: runs a peer until SIGINT, SIGTERM or SIGHUP (its terminal closed). */
export async function runPeer(options: PeerOptions): Promise<void> {
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
  for (const addr of peer.mesh.addresses()) process.stdout.write(`join this mesh with: --bootstrap ${addr} --swarm-key ${peer.config.mesh.swarmKeyFile ?? join(peer.config.dataDir, 'swarm.key')}\n`);
  if (peer.newToken) process.stdout.write(`admin token (also in ${join(peer.config.dataDir, 'token')}): ${peer.token}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      // After a hangup the terminal is gone: writing to it fails, and must not stop the clean-up.
      if (signal === 'SIGHUP') for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
      else process.stdout.write('stopping: sprites are stopped and will start again with the peer\n');
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

/** The secret that signs proxy hops: every holder of the swarm key derives the same one. */
async function hopSecret(config: Readonly<PeerConfig>): Promise<Buffer> {
  const key = await readFile(config.mesh.swarmKeyFile ?? join(config.dataDir, 'swarm.key'));
  return createHash('sha256').update('sprite-proxy-hop\n').update(key).digest();
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
    // A URL wakes sleeping sprites and, as it always has, starts a stopped one.
    start: (name) => manager.wake(name, { stopped: true }),
    servesHttp: async (name) => {
      const services = await manager.control(name).call<ServiceStatus[]>({ op: 'services.list' });
      return services.some((service) => service.httpPort !== undefined);
    },
  };
}

async function loadOrCreate(path: string, make: () => string): Promise<{ token: string; created: boolean }> {
  try {
    return { token: (await readFile(path, 'utf8')).trim(), created: false };
  } catch {
    const token = make();
    await writeFile(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return { token, created: true };
  }
}

/** One peer per data dir: a second start on the same dir fails instead of corrupting it. */
async function lockDataDir(dir: string): Promise<void> {
  const lock = join(dir, 'peer.pid');
  const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
  if (holder && holder !== process.pid && alive(holder)) throw new Error(`another peer (pid ${holder}) uses ${dir}`);
  await writeFile(lock, `${process.pid}\n`);
}

async function unlockDataDir(dir: string): Promise<void> {
  await rm(join(dir, 'peer.pid'), { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// In-process fixtures for proxy tests: a store-backed stand-in for the mesh, a sprite app on a Unix
// socket, and small HTTP clients that set Host (and SNI) the way a browser would.
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer } from 'ws';
import { openStore, peersTable, type CrdtStore, type Member, type MemberEvent, type MemberState, type StoreTx } from '../../gossip/index.ts';
import { createProxy, formatProxyColumn, type EdgeProxy, type LocalSprites, type ProxyAddress, type ProxyComponents, type ProxyInit, type TokenCheck } from '../../proxy/index.ts';
import { edgeCerts, edgeRoutes, RECORD_TABLES, tokenCheck as meshTokenCheck, tokenHash } from '../../node/records/index.ts';
import { proxyCertsTable, spritesTable, tokensTable } from '../../node/records/tables.ts';

/** The token every fixture mesh accepts. */
export const TOKEN = 'test-token-0123456789';

/** A mesh stand-in over a real CRDT store: rows, member states and change events, no network. */
export class FakeMesh {
  readonly peerId: string;
  readonly store: CrdtStore;
  readonly #states = new Map<string, MemberState>();
  readonly #listeners = new Set<(event: MemberEvent) => void>();
  readonly #linked: FakeMesh[] = [];

  constructor(peerId: string) {
    this.peerId = peerId;
    this.store = openStore({ path: ':memory:', tables: [peersTable, ...RECORD_TABLES] });
    this.store.transact((tx) => tx.upsert(tokensTable, { hash: tokenHash(TOKEN), name: 'admin', created: new Date().toISOString() }));
  }

  members(): Member[] {
    return this.store.all(peersTable).map((row) => ({ id: row.id, self: row.id === this.peerId, state: row.id === this.peerId ? 'alive' : (this.#states.get(row.id) ?? 'alive'), row }));
  }

  onMemberChange(listener: (event: MemberEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  write(fn: (tx: StoreTx) => void): unknown {
    const changes = this.store.transact(fn);
    if (changes) for (const other of this.#linked) other.store.apply([changes]);
    return changes;
  }

  /** Replicates this mesh's writes to `others` from now on, as gossip would (at once, in-process). */
  link(...others: FakeMesh[]): void {
    this.#linked.push(...others);
  }

  /** Sets what this peer believes about another peer, as the failure detector would. */
  setState(id: string, to: MemberState): void {
    const from = this.#states.get(id) ?? 'alive';
    this.#states.set(id, to);
    for (const listener of this.#listeners) listener({ id, from, to });
  }
}

/** Token checks against a fake mesh's tokens table, as the peer wires them. */
export function tokenCheck(mesh: FakeMesh): TokenCheck {
  return meshTokenCheck(mesh.store);
}

/** Writes a peer row (with its proxy address) into every given mesh. */
export function putPeer(meshes: FakeMesh[], id: string, proxyHttp: string | null): void {
  for (const mesh of meshes) {
    mesh.write((tx) => tx.upsert(peersTable, {
      id, addrs: '[]', api: 'http://127.0.0.1:1', proxy: proxyHttp === null ? null : formatProxyColumn({ http: proxyHttp, https: null, domain: 'sprites.localhost' }),
      pool_target: 0, pool_ready: 0, capacity: 10, load: 0, version: 'test', heartbeat: Date.now(),
    }));
  }
}

/** Writes a sprite row into every given mesh. */
export function putSprite(meshes: FakeMesh[], row: { name: string; owner: string; state?: string; url_auth?: string; org?: string; reason?: string | null }): void {
  const now = new Date().toISOString();
  for (const mesh of meshes) {
    mesh.write((tx) => tx.upsert(spritesTable, {
      name: row.name, id: row.name, owner: row.owner, epoch: 1, state: row.state ?? 'running', url_auth: row.url_auth ?? 'sprite', org: row.org ?? 'admin', volume: null, http_port: 8080, created: now, updated: now, reason: row.reason ?? null,
    }));
  }
}

/** A sprite's web app on a Unix socket: echo, SSE, uploads, WebSocket echo, resets and hangs. */
export interface SpriteApp {
  socketPath: string;
  server: http.Server;
  close(): Promise<void>;
}

/** Starts the test app on a Unix socket in `dir`. */
export async function startApp(dir: string, name: string): Promise<SpriteApp> {
  const socketPath = join(dir, `${name}.sock`);
  const wss = new WebSocketServer({ noServer: true });
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/headers') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(req.headers));
    } else if (path.startsWith('/sse')) {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let n = 0;
      const timer = setInterval(() => {
        res.write(`data: tick ${n}\n\n`);
        n += 1;
        if (n === 3) {
          clearInterval(timer);
          res.end();
        }
      }, 30);
      res.on('close', () => clearInterval(timer));
    } else if (path === '/upload') {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => res.end(`got ${bytes} bytes`));
    } else if (path === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 120);
      let left = 64;
      const pump = (): void => {
        while (left > 0) {
          left -= 1;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    } else if (path === '/reset') {
      req.socket.destroy();
    } else if (path === '/hang') {
      // Never answers: the proxy's upstream idle timeout must.
    } else if (path === '/hop-by-hop') {
      res.writeHead(200, { 'keep-alive': 'timeout=5', 'x-app': 'yes', 'content-type': 'text/plain' });
      res.end('ok');
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from ${name}`);
    }
  });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
  });
  server.listen(socketPath);
  await once(server, 'listening');
  return {
    socketPath, server,
    close: async () => {
      for (const client of wss.clients) client.terminate();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Local sprites backed by apps: running ones have a socket, `start` brings a stopped one up. */
export class FakeSprites implements LocalSprites {
  readonly sockets = new Map<string, string>();
  readonly stopped = new Map<string, string>();
  starts = 0;
  /** When set, starts wait for it: tests hold a wake open deterministically. */
  gate: Promise<void> | undefined;
  failStart: string | undefined;

  httpSocket(name: string): string | undefined {
    return this.sockets.get(name);
  }

  async start(name: string): Promise<void> {
    this.starts += 1;
    await this.gate;
    if (this.failStart) throw new Error(this.failStart);
    const socket = this.stopped.get(name);
    if (!socket) throw new Error(`no app for ${name}`);
    this.stopped.delete(name);
    this.sockets.set(name, socket);
  }

  async servesHttp(): Promise<boolean> {
    return true;
  }
}

/** A proxy on loopback ports picked by the OS, silent, with a fixed hop secret, routing from the mesh's records as a peer does. */
export function testProxy(mesh: FakeMesh, sprites: LocalSprites, init: Partial<ProxyInit> = {}, forwarder?: ProxyComponents['forwarder']): EdgeProxy {
  const routes = edgeRoutes(mesh);
  const proxy = createProxy(
    { http: { host: '127.0.0.1', port: 0 }, https: null, hopSecret: 'test-secret', sessionSecret: 'test-session-secret', ...init },
    { routes, certs: edgeCerts(mesh), sprites, tokens: tokenCheck(mesh), logger: { info: () => undefined, warn: () => undefined, error: () => undefined }, forwarder },
  );
  return {
    ...proxy,
    stop: async () => {
      await proxy.stop();
      routes.close();
    },
  };
}

/** An answer read whole. */
export interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** The port of a `http://host:port` URL. */
export function portOf(url: string | null | undefined): number {
  return Number(new URL(url!).port);
}

/** One HTTP/1.1 request to 127.0.0.1:port with the given Host, read whole. */
export function request(port: number, host: string, path = '/', options: { method?: string; headers?: OutgoingHttpHeaders; body?: string | Buffer; tls?: { ca: string } } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: { host, ...options.headers }, agent: false as const };
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    };
    const req = options.tls
      ? https.request({ ...common, ca: options.tls.ca, servername: host.replace(/:\d+$/, '') }, onResponse)
      : http.request(common, onResponse);
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Open file descriptors of this process. */
export async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

/** A fresh temp dir and its removal. */
export async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sprite-proxy-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Two in-process proxies over their own stores, as two peers see one mesh: `edge` (peer-edge),
 * where clients arrive, and `owner` (peer-owner), which runs the sprites; both peer rows are in
 * both stores. Apps started through `app` live in one temp dir; `stop` ends all of it.
 */
export interface TwoProxies {
  edgeMesh: FakeMesh;
  ownerMesh: FakeMesh;
  /** Both meshes, for putPeer and putSprite. */
  both: FakeMesh[];
  edgeSprites: FakeSprites;
  ownerSprites: FakeSprites;
  edge: EdgeProxy;
  owner: EdgeProxy;
  edgeAddress: ProxyAddress;
  ownerAddress: ProxyAddress;
  /** Plain HTTP ports of the two proxies. */
  edgePort: number;
  ownerPort: number;
  dir: string;
  /** Starts a sprite app in the fixture's temp dir; `stop` closes it. */
  app(name: string): Promise<SpriteApp>;
  stop(): Promise<void>;
}

/**
 * Starts the two-proxy fixture. With HTTPS on, the edge makes the mesh certificate and the owner
 * finds it in its store, as replication does between real peers.
 */
export async function startTwoProxies(options: { edge?: Partial<ProxyInit>; owner?: Partial<ProxyInit> } = {}): Promise<TwoProxies> {
  const temp = await tempDir();
  const edgeMesh = new FakeMesh('peer-edge');
  const ownerMesh = new FakeMesh('peer-owner');
  const both = [edgeMesh, ownerMesh];
  const edgeSprites = new FakeSprites();
  const ownerSprites = new FakeSprites();
  const apps: SpriteApp[] = [];
  const started: EdgeProxy[] = [];
  const stop = async (): Promise<void> => {
    for (const proxy of started) await proxy.stop();
    for (const app of apps) await app.close();
    await temp.remove();
  };
  try {
    const edge = testProxy(edgeMesh, edgeSprites, options.edge);
    started.push(edge);
    const edgeAddress = await edge.start();
    for (const row of edgeMesh.store.all(proxyCertsTable)) ownerMesh.write((tx) => tx.upsert(proxyCertsTable, row));
    const owner = testProxy(ownerMesh, ownerSprites, { certWaitMs: 5000, ...options.owner });
    started.push(owner);
    const ownerAddress = await owner.start();
    putPeer(both, 'peer-edge', edgeAddress.http);
    putPeer(both, 'peer-owner', ownerAddress.http);
    return {
      edgeMesh, ownerMesh, both, edgeSprites, ownerSprites, edge, owner, edgeAddress, ownerAddress,
      edgePort: portOf(edgeAddress.http), ownerPort: portOf(ownerAddress.http), dir: temp.dir,
      app: async (name) => {
        const app = await startApp(temp.dir, name);
        apps.push(app);
        return app;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import { parseAddrs, type Mesh } from '../../gossip/index.ts';
import { parseProxyColumn, spriteHost, URL_AUTH_MODES, type ProxyAddress } from '../../proxy/index.ts';
import type { ServiceStatus, SessionInfo } from '../../vm/index.ts';
import { ApiError } from './errors.ts';
import type { Schema } from '../schema.ts';
import type { Drain } from '../drain.ts';
import type { Placement } from '../placement.ts';
import type { Caller, SpriteRecord, SpriteRegistry } from '../records/index.ts';
import { checkServiceName, checkSpriteName } from '../names.ts';
import type { SpriteManager } from '../sprites.ts';
import { sees } from './authz.ts';
import { forwardRequest, hopRole } from './forward.ts';
import { flag, parseJson, readBody, readJson, sendJson } from './http.ts';
import { streamLog } from './logs.ts';
import { bridgeBytes, bridgeExec } from './ws.ts';

/** What a plain HTTP handler gets. */
export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  url: URL;
  sprites: SpriteManager;
  mesh: Mesh;
  /** The replicated sprite records (URL auth lives there). */
  registry: SpriteRegistry;
  /** This peer's edge proxy: its addresses and the mesh CA it serves. */
  edge: EdgeView;
  placement: Placement;
  drain: Drain;
  /** Who sent the request (from its bearer token). */
  caller: Caller;
}

/**
 * A plain HTTP route. A `name` group in a pattern is always a sprite name: the server answers
 * ERR_SPRITE_NOT_FOUND before the handler runs when that sprite belongs to an org the caller does not see.
 */
export interface Route {
  method: string;
  pattern: RegExp;
  handler: (ctx: RouteContext) => Promise<void> | void;
  /** Served from this peer's replica even when the sprite runs elsewhere (reads of its record). */
  anyPeer?: boolean;
  /** The route uses the sprite itself (waking it): the call counts as use for the idle timer while it lasts. */
  uses?: true | ((url: URL) => boolean);
}

/** A WebSocket route: `open` prepares the sprite side and returns what to do with the socket. */
export interface WsRoute {
  method: 'GET';
  pattern: RegExp;
  open: (ctx: { params: Record<string, string>; url: URL; sprites: SpriteManager; caller: Caller }) => Promise<(ws: WebSocket) => void>;
}

/** What the API shows of this peer's edge proxy. */
export interface EdgeView {
  /** Where the proxy listens, once it does. */
  address(): ProxyAddress | undefined;
  /** The mesh CA in PEM, or null when the certificate comes from files (or there is no HTTPS listener). */
  ca(): string | null;
}

const NAME = '(?<name>[^/]+)';

/** On a create handed to the name's arbiter: `PEER;warm|none`, the peer the client asked and whether its pool had a warm sprite. */
const ORIGIN_HEADER = 'x-sprite-origin';

function parseOrigin(value: string | string[] | undefined): { peer: string; warm: boolean } | undefined {
  const match = typeof value === 'string' ? /^([^;]{1,128});(warm|none)$/.exec(value) : null;
  return match ? { peer: match[1]!, warm: match[2] === 'warm' } : undefined;
}

/** An arbiter that has not acknowledged a create (102) by then is passed over for the next one. */
const ARBITER_ANSWER_MS = 5000;

/** On a create handed to an arbiter: wall-clock ms after which the sender has passed it over. */
const DEADLINE_HEADER = 'x-sprite-deadline';

const createSchema: Schema = {
  type: 'object',
  required: ['name'],
  // The name's rule is checked by the sprite manager, which answers ERR_BAD_NAME.
  properties: { name: { type: 'string', maxLength: 256 }, image: { type: 'string', maxLength: 256 } },
  additionalProperties: false,
};

const checkpointSchema: Schema = {
  type: 'object',
  properties: { comment: { type: 'string', maxLength: 1024 } },
  additionalProperties: false,
};

const serviceSchema: Schema = {
  type: 'object',
  required: ['cmd'],
  properties: {
    cmd: { type: 'string', minLength: 1, maxLength: 4096 },
    args: { type: 'array', items: { type: 'string', maxLength: 65536 }, maxItems: 1024 },
    env: { type: 'object', additionalProperties: { type: 'string', maxLength: 65536 }, maxProperties: 256 },
    dir: { type: 'string', pattern: '^/', description: 'must be an absolute path' },
    httpPort: { type: 'integer', minimum: 1, maximum: 65535 },
  },
  additionalProperties: false,
};

const adoptSchema: Schema = {
  type: 'object',
  properties: { start: { type: 'boolean' } },
  additionalProperties: false,
};

const urlAuthSchema: Schema = {
  type: 'object',
  required: ['auth'],
  properties: { auth: { type: 'string', pattern: `^(${URL_AUTH_MODES.join('|')})$`, description: `must be ${URL_AUTH_MODES.join(' or ')}` } },
  additionalProperties: false,
};

/** Plain HTTP routes under /v1. */
export const httpRoutes: Route[] = [
  {
    method: 'POST',
    pattern: /^\/v1\/sprites$/,
    handler: async ({ req, res, sprites, mesh, placement, caller }) => {
      const raw = await readBody(req);
      // The body travels as is to the peer that creates: it looks the image up in the shared store.
      const { name, image } = parseJson<{ name: string; image?: string }>(raw, createSchema);
      checkSpriteName(name);
      const role = hopRole(req);
      if (role === 'place') return sendJson(res, 201, await sprites.create(name, caller.org, image));
      if (role === 'arbiter') {
        // A request the sender has given up on (this peer was frozen or too slow) went to the next
        // arbiter: acting on it now could create a name that was meanwhile created and destroyed.
        if (Date.now() > Number(req.headers[DEADLINE_HEADER])) {
          req.socket.destroy();
          return;
        }
        // Tell the sender this arbiter is alive; the create may take a while.
        res.writeProcessing();
      }
      if (role !== 'arbiter') {
        // The arbiter places the sprite here when this peer has a warm sprite (and here, cold, if no peer has one).
        req.headers[ORIGIN_HEADER] = `${mesh.peerId};${placement.warmHere() ? 'warm' : 'none'}`;
        for (const arbiter of placement.arbiters(name)) {
          req.headers[DEADLINE_HEADER] = String(Date.now() + ARBITER_ANSWER_MS);
          try {
            return await forwardRequest(req, res, arbiter.api, 'arbiter', { body: raw, answerWithinMs: ARBITER_ANSWER_MS });
          } catch {
            // Silent or gone: the next peer in the name's ranking decides.
          }
        }
      }
      await placement.arbitrate(name, async () => {
        const target = placement.target(role === 'arbiter' ? parseOrigin(req.headers[ORIGIN_HEADER]) : undefined);
        if (target && target !== 'here') {
          try {
            await forwardRequest(req, res, target.api, 'place', { body: raw });
            return res.statusCode === 201;
          } catch {
            // The chosen peer went away: create here instead.
          }
        }
        sendJson(res, 201, await sprites.create(name, caller.org, image));
        return true;
      });
    },
  },
  // An admin sees every org's sprites (each record names its org); anyone else only their own org's.
  {
    method: 'GET',
    pattern: /^\/v1\/sprites$/,
    handler: ({ res, sprites, mesh, caller }) => {
      const states = memberStates(mesh);
      sendJson(res, 200, { sprites: sprites.list().filter((s) => sees(caller, s.org)).map((record) => withOwnerState(states, record)) });
    },
  },
  { method: 'GET', pattern: /^\/v1\/pool$/, handler: ({ res, sprites }) => sendJson(res, 200, sprites.poolStatus()) },
  {
    method: 'GET',
    pattern: /^\/v1\/peers$/,
    handler: ({ res, mesh }) => {
      const peers = mesh.members().map(({ id, state, self, row }) => ({
        id, state, self, api: row.api, proxy: parseProxyColumn(row.proxy) ?? null, addrs: parseAddrs(row.addrs), poolTarget: row.pool_target, poolReady: row.pool_ready,
        capacity: row.capacity, load: row.load, drain: row.drain, version: row.version, heartbeat: new Date(row.heartbeat).toISOString(),
      }));
      sendJson(res, 200, { peers });
    },
  },
  {
    method: 'POST',
    pattern: /^\/v1\/peers\/(?<peer>[^/]+)\/drain$/,
    handler: async ({ req, res, params, mesh, drain }) => {
      if (params.peer !== 'self' && params.peer !== mesh.peerId && !hopRole(req)) {
        const peer = mesh.members().find((m) => m.id === params.peer);
        if (!peer) throw new ApiError('ERR_NOT_FOUND', `no peer ${params.peer} in the mesh`);
        if (peer.state !== 'alive') throw new ApiError('ERR_OWNER_UNREACHABLE', `peer ${peer.id} is ${peer.state}`);
        return forwardRequest(req, res, peer.row.api, 'owner');
      }
      void drain.start();
      sendJson(res, 202, { peer: mesh.peerId, drain: drain.state });
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/v1/sprites/${NAME}/adopt$`),
    // Sent by a draining owner to the peer that takes the sprite over: served here, not forwarded back.
    anyPeer: true,
    handler: async ({ req, res, params, sprites }) => {
      const body = await readJson<{ start?: boolean }>(req, adoptSchema);
      sendJson(res, 200, await sprites.adopt(params.name!, { start: body.start ?? true }));
    },
  },
  { method: 'GET', pattern: /^\/v1\/mesh\/health$/, handler: ({ res, mesh }) => sendJson(res, 200, jsonSafe(mesh.health())) },
  { method: 'GET', pattern: new RegExp(`^/v1/sprites/${NAME}$`), anyPeer: true, handler: ({ res, params, sprites, mesh }) => sendJson(res, 200, withOwnerState(memberStates(mesh), sprites.get(params.name!))) },
  {
    method: 'DELETE',
    pattern: new RegExp(`^/v1/sprites/${NAME}$`),
    handler: async ({ res, params, sprites }) => {
      await sprites.destroy(params.name!);
      res.writeHead(204).end();
    },
  },
  { method: 'POST', pattern: new RegExp(`^/v1/sprites/${NAME}/start$`), handler: async ({ res, params, sprites }) => sendJson(res, 200, await sprites.startSprite(params.name!)) },
  { method: 'POST', pattern: new RegExp(`^/v1/sprites/${NAME}/stop$`), handler: async ({ res, params, sprites }) => sendJson(res, 200, await sprites.stopSprite(params.name!)) },
  { method: 'GET', pattern: new RegExp(`^/v1/sprites/${NAME}/url$`), anyPeer: true, handler: ({ res, params, sprites, registry, edge }) => sendJson(res, 200, spriteUrl(edge, registry, sprites.get(params.name!).name)) },
  {
    method: 'PUT',
    pattern: new RegExp(`^/v1/sprites/${NAME}/url$`),
    handler: async ({ req, res, params, sprites, registry, edge }) => {
      const body = await readJson<{ auth: string }>(req, urlAuthSchema);
      // The request reached the owner (see the API server): only the owner writes its sprites' rows.
      const record = sprites.owned(params.name!);
      registry.setUrlAuth(record.name, record.owner, body.auth);
      sendJson(res, 200, spriteUrl(edge, registry, record.name));
    },
  },
  {
    method: 'GET',
    pattern: /^\/v1\/proxy\/ca$/,
    handler: ({ res, edge }) => {
      const domain = edge.address()?.domain;
      const ca = edge.ca();
      if (!ca) throw new ApiError('ERR_PROXY_NO_CA', 'this peer serves a certificate from files (or has no HTTPS listener): there is no mesh CA');
      sendJson(res, 200, { domain, ca });
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints$`),
    handler: async ({ req, res, params, sprites }) => {
      const body = await readJson<{ comment?: string }>(req, checkpointSchema);
      sendJson(res, 201, await sprites.checkpoint(params.name!, body.comment ?? ''));
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints$`),
    handler: async ({ res, params, sprites }) => sendJson(res, 200, { checkpoints: await sprites.checkpoints(params.name!) }),
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints/(?<id>[^/]+)$`),
    handler: async ({ res, params, sprites }) => {
      const found = (await sprites.checkpoints(params.name!)).find((c) => c.id === params.id);
      if (!found) throw new ApiError('ERR_CHECKPOINT_NOT_FOUND', `no checkpoint ${params.id}`);
      sendJson(res, 200, found);
    },
  },
  {
    method: 'DELETE',
    pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints/(?<id>[^/]+)$`),
    handler: async ({ res, params, sprites }) => {
      await sprites.deleteCheckpoint(params.name!, params.id!);
      res.writeHead(204).end();
    },
  },
  {
    method: 'POST',
    pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints/(?<id>[^/]+)/restore$`),
    handler: async ({ res, params, sprites }) => sendJson(res, 200, await sprites.restore(params.name!, params.id!)),
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/sessions$`),
    uses: true,
    handler: async ({ res, params, sprites }) => {
      const sessions = await (await sprites.awake(params.name!)).call<SessionInfo[]>({ op: 'sessions.list' });
      sendJson(res, 200, { sessions });
    },
  },
  {
    method: 'DELETE',
    pattern: new RegExp(`^/v1/sprites/${NAME}/sessions/(?<id>[^/]+)$`),
    uses: true,
    handler: async ({ res, params, sprites }) => {
      await (await sprites.awake(params.name!)).call({ op: 'sessions.kill', id: params.id });
      res.writeHead(204).end();
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/services$`),
    uses: true,
    handler: async ({ res, params, sprites }) => {
      sendJson(res, 200, { services: await (await sprites.awake(params.name!)).call<ServiceStatus[]>({ op: 'services.list' }) });
    },
  },
  {
    method: 'PUT',
    pattern: new RegExp(`^/v1/sprites/${NAME}/services/(?<service>[^/]+)$`),
    uses: true,
    handler: async ({ req, res, params, sprites }) => {
      const service = checkServiceName(params.service!);
      const body = await readJson<Record<string, unknown>>(req, serviceSchema);
      sendJson(res, 200, await (await sprites.awake(params.name!)).call({ op: 'services.put', spec: { ...body, name: service } }));
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/services/(?<service>[^/]+)$`),
    uses: true,
    handler: async ({ res, params, sprites }) => {
      sendJson(res, 200, await (await sprites.awake(params.name!)).call({ op: 'services.get', name: checkServiceName(params.service!) }));
    },
  },
  {
    method: 'DELETE',
    pattern: new RegExp(`^/v1/sprites/${NAME}/services/(?<service>[^/]+)$`),
    uses: true,
    handler: async ({ res, params, sprites }) => {
      await (await sprites.awake(params.name!)).call({ op: 'services.delete', name: checkServiceName(params.service!) });
      res.writeHead(204).end();
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/services/(?<service>[^/]+)/logs$`),
    // Following a service's log wakes a sleeping sprite (its service writes again) and keeps it awake.
    uses: (url) => flag(url, 'follow'),
    handler: async ({ req, res, params, url, sprites }) => {
      const service = checkServiceName(params.service!);
      const follow = flag(url, 'follow');
      const { state } = sprites.get(params.name!);
      // Ask the sprite first when it runs, so an unknown service is a 404 rather than an empty log.
      if (state === 'running' || (follow && (state === 'warm' || state === 'cold'))) {
        await (await sprites.awake(params.name!)).call({ op: 'services.get', name: service });
      }
      await streamLog(req, res, sprites.serviceLog(params.name!, service), follow);
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/logs$`),
    handler: async ({ req, res, params, url, sprites }) => streamLog(req, res, sprites.initLog(params.name!), flag(url, 'follow')),
  },
];

/** WebSocket routes under /v1. */
export const wsRoutes: WsRoute[] = [
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/exec$`),
    open: async ({ params, url, sprites }) => {
      const command = url.searchParams.getAll('cmd');
      if (command.length === 0) throw new ApiError('ERR_BAD_REQUEST', 'exec needs at least one cmd parameter');
      const env: Record<string, string> = {};
      for (const pair of url.searchParams.getAll('env')) {
        const eq = pair.indexOf('=');
        if (eq < 1) throw new ApiError('ERR_BAD_REQUEST', `env must be K=V, got ${pair}`);
        env[pair.slice(0, eq)] = pair.slice(eq + 1);
      }
      const dir = url.searchParams.get('dir') ?? undefined;
      if (dir !== undefined && !dir.startsWith('/')) throw new ApiError('ERR_BAD_REQUEST', 'dir must be an absolute path');
      const tty = flag(url, 'tty');
      const stream = await (await sprites.awake(params.name!)).open({
        op: 'exec', command, env, dir, tty, cols: size(url, 'cols', 80), rows: size(url, 'rows', 24),
      });
      return (ws) => bridgeExec(ws, stream);
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/sessions/(?<id>[^/]+)/attach$`),
    open: async ({ params, sprites }) => {
      const stream = await (await sprites.awake(params.name!)).open({ op: 'attach', id: params.id });
      return (ws) => bridgeExec(ws, stream);
    },
  },
  {
    method: 'GET',
    pattern: new RegExp(`^/v1/sprites/${NAME}/proxy$`),
    open: async ({ params, url, sprites }) => {
      const port = Number(url.searchParams.get('port'));
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ApiError('ERR_BAD_REQUEST', 'port must be 1-65535');
      const stream = await (await sprites.awake(params.name!)).open({ op: 'forward', port });
      return (ws) => bridgeBytes(ws, stream);
    },
  },
];

/** A record with this peer's view of its owner (alive, suspect or down), so a dead owner's sprites show it. */
function withOwnerState(states: ReadonlyMap<string, string>, record: SpriteRecord): SpriteRecord & { ownerState: string } {
  return { ...record, ownerState: states.get(record.owner) ?? 'unknown' };
}

/** Each member's state (alive, suspect, down) by peer id, read once per request. */
function memberStates(mesh: Mesh): Map<string, string> {
  return new Map(mesh.members().map((member) => [member.id, member.state]));
}

/** A sprite's URLs on this peer's proxy and its URL auth. */
function spriteUrl(edge: EdgeView, registry: SpriteRegistry, name: string): { name: string; url: string | null; http: string | null; auth: string } {
  const proxy = edge.address();
  const auth = registry.urlAuth(name);
  const at = (base: string | null | undefined): string | null => {
    if (!base || !proxy) return null;
    const url = new URL(base);
    const scheme = url.protocol === 'https:' ? 'https' : 'http';
    return `${scheme}://${spriteHost(name, proxy.domain, Number(url.port || (scheme === 'https' ? 443 : 80)), scheme)}/`;
  };
  return { name, url: at(proxy?.https) ?? at(proxy?.http), http: at(proxy?.http), auth };
}

/** Store health carries bigints (HLC timestamps); JSON wants strings. */
function jsonSafe(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
}


function size(url: URL, name: string, fallback: number): number {
  const value = Number(url.searchParams.get(name) ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > 1000) throw new ApiError('ERR_BAD_REQUEST', `${name} must be 1-1000`);
  return value;
}

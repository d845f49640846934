import { spriteHost, URL_AUTH_MODES, type ProxyAddress } from '../../../proxy/index.ts';
import type { CreateFlow } from '../../placement/index.ts';
import type { SpriteRecord, SpriteRegistry } from '../../records/index.ts';
import { checkSpriteName } from '../../names.ts';
import type { Schema } from '../../schema.ts';
import type { SpriteManager } from '../../sprites.ts';
import { sees } from '../authz.ts';
import { parseJson, readBody, readJson, sendJson } from '../http.ts';
import { NAME, type Route } from '../router.ts';

/** What the API shows of this peer's edge proxy. */
export interface EdgeView {
  /** Where the proxy listens, once it does. */
  address(): ProxyAddress | undefined;
  /** The mesh CA in PEM, or null when the certificate comes from files (or there is no HTTPS listener). */
  ca(): string | null;
}

/** What the sprite routes work on. */
export interface SpriteRoutesInit {
  sprites: Pick<SpriteManager, 'list' | 'get' | 'destroy' | 'startSprite' | 'stopSprite' | 'adopt' | 'owned'>;
  /** Each owner's state (alive, suspect, down), shown beside its sprites. */
  mesh: { members(): { id: string; state: string }[] };
  /** The replicated sprite records (URL auth lives there). */
  registry: Pick<SpriteRegistry, 'urlAuth' | 'setUrlAuth'>;
  edge: Pick<EdgeView, 'address'>;
  /** The create protocol: arbitration and placement across the mesh. */
  creates: Pick<CreateFlow, 'create'>;
}

const createSchema: Schema = {
  type: 'object',
  required: ['name'],
  // The name's rule is checked by the sprite manager, which answers ERR_BAD_NAME.
  properties: { name: { type: 'string', maxLength: 256 }, image: { type: 'string', maxLength: 256 } },
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

/** Routes of sprites themselves: create, list, get, destroy, start, stop, adopt and their URL. */
export function spriteRoutes({ sprites, mesh, registry, edge, creates }: SpriteRoutesInit): Route[] {
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/sprites$/,
      handler: async ({ req, res, caller }) => {
        // The body travels as is to the peer that creates: it looks the image up in the shared store.
        const body = await readBody(req);
        const { name, image } = parseJson<{ name: string; image?: string }>(body, createSchema);
        checkSpriteName(name);
        const created = await creates.create({ name, org: caller.org, image }, { req, res, body });
        // Undefined: another peer answered (relayed already), or this arbiter was too late to.
        if (created) sendJson(res, 201, created);
      },
    },
    // An admin sees every org's sprites (each record names its org); anyone else only their own org's.
    {
      method: 'GET',
      pattern: /^\/v1\/sprites$/,
      handler: ({ res, caller }) => {
        const states = memberStates(mesh);
        sendJson(res, 200, { sprites: sprites.list().filter((s) => sees(caller, s.org)).map((record) => withOwnerState(states, record)) });
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/sprites/${NAME}/adopt$`),
      // Sent by a draining owner to the peer that takes the sprite over: served here, not forwarded back.
      anyPeer: true,
      handler: async ({ req, res, params }) => {
        const body = await readJson<{ start?: boolean }>(req, adoptSchema);
        sendJson(res, 200, await sprites.adopt(params.name!, { start: body.start ?? true }));
      },
    },
    { method: 'GET', pattern: new RegExp(`^/v1/sprites/${NAME}$`), anyPeer: true, handler: ({ res, params }) => sendJson(res, 200, withOwnerState(memberStates(mesh), sprites.get(params.name!))) },
    {
      method: 'DELETE',
      pattern: new RegExp(`^/v1/sprites/${NAME}$`),
      handler: async ({ res, params }) => {
        await sprites.destroy(params.name!);
        res.writeHead(204).end();
      },
    },
    { method: 'POST', pattern: new RegExp(`^/v1/sprites/${NAME}/start$`), handler: async ({ res, params }) => sendJson(res, 200, await sprites.startSprite(params.name!)) },
    { method: 'POST', pattern: new RegExp(`^/v1/sprites/${NAME}/stop$`), handler: async ({ res, params }) => sendJson(res, 200, await sprites.stopSprite(params.name!)) },
    { method: 'GET', pattern: new RegExp(`^/v1/sprites/${NAME}/url$`), anyPeer: true, handler: ({ res, params }) => sendJson(res, 200, spriteUrl(edge, registry, sprites.get(params.name!).name)) },
    {
      method: 'PUT',
      pattern: new RegExp(`^/v1/sprites/${NAME}/url$`),
      handler: async ({ req, res, params }) => {
        const body = await readJson<{ auth: string }>(req, urlAuthSchema);
        // The request reached the owner (see the API server): only the owner writes its sprites' rows.
        const record = sprites.owned(params.name!);
        registry.setUrlAuth(record.name, record.owner, body.auth);
        sendJson(res, 200, spriteUrl(edge, registry, record.name));
      },
    },
  ];
}

/** A record with this peer's view of its owner (alive, suspect or down), so a dead owner's sprites show it. */
function withOwnerState(states: ReadonlyMap<string, string>, record: SpriteRecord): SpriteRecord & { ownerState: string } {
  return { ...record, ownerState: states.get(record.owner) ?? 'unknown' };
}

/** Each member's state (alive, suspect, down) by peer id, read once per request. */
function memberStates(mesh: SpriteRoutesInit['mesh']): Map<string, string> {
  return new Map(mesh.members().map((member) => [member.id, member.state]));
}

/** A sprite's URLs on this peer's proxy and its URL auth. */
function spriteUrl(edge: SpriteRoutesInit['edge'], registry: SpriteRoutesInit['registry'], name: string): { name: string; url: string | null; http: string | null; auth: string } {
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

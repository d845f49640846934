import type { ProxyAddress } from '../../../proxy/index.ts';
import type { CreateFlow } from '../../placement/index.ts';
import type { Caller, SpriteRecord, SpriteRegistry } from '../../records/index.ts';
import type { Schema } from '../../schema.ts';
import type { SpriteManager } from '../../sprites.ts';
import type { OrgQuotas } from '../../quotas.ts';
import { sees } from '../authz.ts';
import { readBody, readJson, sendJson } from '../http.ts';
import { NAME, type Route } from '../router.ts';
import { countStates, pageOf, parseListQuery } from '../sprite-list.ts';
import { parseCreate, parseUpdate } from '../sprite-requests.ts';
import { spriteViews, type SpriteObject } from '../sprite-view.ts';
import { watchSprites } from '../sprite-watch.ts';

/** What the API shows of this peer's edge proxy. */
export interface EdgeView {
  /** Where the proxy listens, once it does. */
  address(): ProxyAddress | undefined;
  /** The mesh CA in PEM, or null when the certificate comes from files (or there is no HTTPS listener). */
  ca(): string | null;
}

/** What the sprite routes work on. */
export interface SpriteRoutesInit {
  sprites: Pick<SpriteManager, 'get' | 'destroy' | 'startSprite' | 'stopSprite' | 'adopt' | 'owned' | 'restart' | 'check' | 'upgrade' | 'limits'>;
  /** Each owner's state (alive, suspect, down), shown beside its sprites. */
  mesh: { members(): { id: string; state: string }[] };
  /** The replicated sprite records: listed, watched, and updated by the owner. */
  registry: Pick<SpriteRegistry, 'list' | 'get' | 'watch' | 'update'>;
  edge: Pick<EdgeView, 'address'>;
  /** The create protocol: arbitration and placement across the mesh. */
  creates: Pick<CreateFlow, 'create'>;
  /** The orgs' quotas: a create over one is refused here, before it travels (the creating peer asks again). */
  quotas: Pick<OrgQuotas, 'check'>;
}

const adoptSchema: Schema = {
  type: 'object',
  properties: { start: { type: 'boolean' } },
  additionalProperties: false,
};

/**
 * Routes of sprites themselves, in Sprites' shapes: create, list (and its live stream), get, update,
 * delete, restart, check, upgrade; and this mesh's own start, stop and adopt.
 */
export function spriteRoutes({ sprites, mesh, registry, edge, creates, quotas }: SpriteRoutesInit): Route[] {
  /** Wire objects for one answer, as this peer sees the mesh now. */
  const views = (): ((record: SpriteRecord) => SpriteObject) => spriteViews({
    proxy: edge.address(), states: new Map(mesh.members().map((member) => [member.id, member.state])), limits: sprites.limits,
  });
  const view = (record: SpriteRecord): SpriteObject => views()(record);
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/sprites$/,
      // Any token: the sprite is made in the token's org.
      auth: 'token',
      handler: async ({ req, res, caller }) => {
        // The body travels as is to the peer that creates; each peer on the way reads it the same way.
        const body = await readBody(req);
        const spec = parseCreate(body, caller.org);
        // On every peer on the way (the client's, the arbiter, the creator), each against its replica.
        quotas.check(spec.org, 'create');
        const created = await creates.create(spec, { req, res, body });
        // Undefined: another peer answered (relayed already), or this arbiter was too late to.
        if (created) sendJson(res, 201, view(created));
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/sprites$/,
      // Any token: the listing holds only the sprites it sees.
      auth: 'token',
      handler: ({ req, res, url, caller }) => {
        const query = parseListQuery(url);
        const visible = visibleTo(caller);
        if (/application\/x-ndjson/.test(req.headers.accept ?? '')) {
          watchSprites(res, { registry, visible, org: caller.org, query });
          return;
        }
        // One read of the replica; nothing per sprite beyond its row.
        const records = registry.list();
        const page = pageOf(records, query, visible);
        const show = views();
        sendJson(res, 200, {
          sprites: page.records.map(show), has_more: page.next !== null, next_continuation_token: page.next, name: caller.org, ...countStates(records, visible),
        });
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/sprites/${NAME}/adopt$`),
      // Only a draining peer hands a sprite over: a tenant's adopt would move ownership at will.
      auth: 'peer',
      // Sent by a draining owner to the peer that takes the sprite over: served here, not forwarded back.
      anyPeer: true,
      handler: async ({ req, res, params }) => {
        const body = await readJson<{ start?: boolean }>(req, adoptSchema);
        sendJson(res, 200, view(await sprites.adopt(params.name!, { start: body.start ?? true })));
      },
    },
    { method: 'GET', auth: 'org', pattern: new RegExp(`^/v1/sprites/${NAME}$`), anyPeer: true, handler: ({ res, params }) => sendJson(res, 200, view(sprites.get(params.name!))) },
    {
      method: 'PUT',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}$`),
      handler: async ({ req, res, params }) => {
        const update = parseUpdate(await readBody(req));
        // The request reached the owner (see the API server): only the owner writes its sprites' rows.
        const record = sprites.owned(params.name!);
        registry.update(record.name, record.owner, update);
        sendJson(res, 200, view(sprites.get(record.name)));
      },
    },
    {
      method: 'DELETE',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}$`),
      handler: async ({ res, params }) => {
        await sprites.destroy(params.name!);
        res.writeHead(204).end();
      },
    },
    { method: 'POST', auth: 'org', pattern: new RegExp(`^/v1/sprites/${NAME}/start$`), handler: async ({ res, params }) => sendJson(res, 200, view(await sprites.startSprite(params.name!))) },
    { method: 'POST', auth: 'org', pattern: new RegExp(`^/v1/sprites/${NAME}/stop$`), handler: async ({ res, params }) => sendJson(res, 200, view(await sprites.stopSprite(params.name!))) },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/restart$`),
      handler: async ({ res, params }) => {
        const record = await sprites.restart(params.name!);
        sendJson(res, 200, { sprite_name: record.name, machine_id: record.id, message: `sprite ${record.name} restarted: a new sandbox on its disk, its services started again` });
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/check$`),
      handler: async ({ res, params }) => {
        const record = sprites.owned(params.name!);
        const health = await sprites.check(record.name);
        sendJson(res, 200, {
          sprite_name: record.name, sprite_id: record.id, status: health.status, reason: health.reason, checked_at: new Date().toISOString(), elapsed: health.elapsedMs,
        });
      },
    },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/upgrade$`),
      handler: async ({ res, params }) => {
        await sprites.upgrade(params.name!);
        res.writeHead(204).end();
      },
    },
  ];
}

/** Whether the caller sees a record: its own org's, or any for an admin. */
function visibleTo(caller: Caller): (record: SpriteRecord) => boolean {
  return (record) => sees(caller, record.org);
}

import type { ServiceStatus } from '../../../vm/index.ts';
import { checkServiceName } from '../../names.ts';
import type { Schema } from '../../schema.ts';
import type { SpriteManager } from '../../sprites.ts';
import { flag, readJson, sendJson } from '../http.ts';
import { streamLog } from '../logs.ts';
import { NAME, type Route } from '../router.ts';

/** What the service and log routes work on. */
export type ServiceSprites = Pick<SpriteManager, 'awake' | 'get' | 'serviceLog' | 'initLog'>;

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

const SERVICE = `^/v1/sprites/${NAME}/services/(?<service>[^/]+)`;

/** Routes under /v1/sprites/{name}/services, their logs, and the sprite's own log (/logs). */
export function serviceRoutes(sprites: ServiceSprites): Route[] {
  return [
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/sprites/${NAME}/services$`),
      uses: true,
      handler: async ({ res, params }) => {
        sendJson(res, 200, { services: await (await sprites.awake(params.name!)).call<ServiceStatus[]>({ op: 'services.list' }) });
      },
    },
    {
      method: 'PUT',
      pattern: new RegExp(`${SERVICE}$`),
      uses: true,
      handler: async ({ req, res, params }) => {
        const service = checkServiceName(params.service!);
        const body = await readJson<Record<string, unknown>>(req, serviceSchema);
        sendJson(res, 200, await (await sprites.awake(params.name!)).call({ op: 'services.put', spec: { ...body, name: service } }));
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`${SERVICE}$`),
      uses: true,
      handler: async ({ res, params }) => {
        sendJson(res, 200, await (await sprites.awake(params.name!)).call({ op: 'services.get', name: checkServiceName(params.service!) }));
      },
    },
    {
      method: 'DELETE',
      pattern: new RegExp(`${SERVICE}$`),
      uses: true,
      handler: async ({ res, params }) => {
        await (await sprites.awake(params.name!)).call({ op: 'services.delete', name: checkServiceName(params.service!) });
        res.writeHead(204).end();
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`${SERVICE}/logs$`),
      // Following a service's log wakes a sleeping sprite (its service writes again) and keeps it awake.
      uses: (url) => flag(url, 'follow'),
      handler: async ({ req, res, params, url }) => {
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
      handler: async ({ req, res, params, url }) => streamLog(req, res, sprites.initLog(params.name!), flag(url, 'follow')),
    },
  ];
}

import type { ServiceWire } from '../../../vm/index.ts';
import { PeerError } from '../../errors.ts';
import { checkServiceName, SERVICE_NAME_PATTERN } from '../../names.ts';
import type { Schema } from '../../schema.ts';
import type { SpriteManager } from '../../sprites.ts';
import { flag, parseJson, readBody, readJson, sendJson } from '../http.ts';
import { streamLog, tailEvents } from '../logs.ts';
import { countParam, durationParam, relayNdjson, startNdjson } from '../ndjson.ts';
import { NAME, type Route, type RouteContext } from '../router.ts';

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
    needs: { type: 'array', items: { type: 'string', pattern: SERVICE_NAME_PATTERN, description: 'must be a service name' }, maxItems: 64 },
    http_port: { type: 'integer', minimum: 1, maximum: 65535 },
  },
  additionalProperties: false,
};

const signalSchema: Schema = {
  type: 'object',
  required: ['name', 'signal'],
  properties: { name: { type: 'string', maxLength: 63 }, signal: { type: 'string', maxLength: 16 } },
  additionalProperties: false,
};

/** How long a create, start or restart streams the service's output unless the caller says (Sprites' default). */
const DEFAULT_DURATION_MS = 5000;
/** The longest a request may stream or follow a log. */
const MAX_DURATION_MS = 24 * 3600_000;
const MAX_STOP_TIMEOUT_MS = 300_000;
const MAX_LINES = 10_000;

const SERVICES = `^/v1/sprites/${NAME}/services`;
const SERVICE = `${SERVICES}/(?<service>[^/]+)`;

/** Routes under /v1/sprites/{name}/services, their logs, and the sprite's own log (/logs). */
export function serviceRoutes(sprites: ServiceSprites): Route[] {
  /** Streams what sprite-init writes for an action on a service (see vm/init/service-ops.ts). */
  const stream = async ({ res, params }: RouteContext, request: Record<string, unknown>): Promise<void> => {
    const name = checkServiceName(params.service!);
    const control = await sprites.awake(params.name!);
    await relayNdjson(res, await control.open({ op: 'services.stream', name, ...request }));
  };
  return [
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`${SERVICES}$`),
      uses: true,
      handler: async ({ res, params }) => sendJson(res, 200, await (await sprites.awake(params.name!)).call<ServiceWire[]>({ op: 'services.list' })),
    },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`${SERVICES}/signal$`),
      uses: true,
      handler: async ({ req, res, params }) => {
        const body = await readJson<{ name: string; signal: string }>(req, signalSchema);
        await (await sprites.awake(params.name!)).call({ op: 'services.signal', name: checkServiceName(body.name), signal: body.signal });
        res.writeHead(204).end();
      },
    },
    {
      method: 'PUT',
      auth: 'org',
      pattern: new RegExp(`${SERVICE}$`),
      uses: true,
      handler: async (ctx) => {
        checkServiceName(ctx.params.service!);
        const body = parseJson<Record<string, unknown>>(await readBody(ctx.req), serviceSchema, withoutNullPort);
        const durationMs = durationParam(ctx.url, 'duration', DEFAULT_DURATION_MS, MAX_DURATION_MS);
        await stream(ctx, { action: 'put', spec: body, durationMs });
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`${SERVICE}$`),
      uses: true,
      handler: async ({ res, params }) => {
        sendJson(res, 200, await (await sprites.awake(params.name!)).call({ op: 'services.get', name: checkServiceName(params.service!) }));
      },
    },
    {
      method: 'DELETE',
      auth: 'org',
      pattern: new RegExp(`${SERVICE}$`),
      uses: true,
      handler: async ({ res, params }) => {
        await (await sprites.awake(params.name!)).call({ op: 'services.delete', name: checkServiceName(params.service!) });
        res.writeHead(204).end();
      },
    },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`${SERVICE}/start$`),
      uses: true,
      handler: (ctx) => stream(ctx, { action: 'start', durationMs: durationParam(ctx.url, 'duration', DEFAULT_DURATION_MS, MAX_DURATION_MS) }),
    },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`${SERVICE}/restart$`),
      uses: true,
      handler: (ctx) => stream(ctx, { action: 'restart', durationMs: durationParam(ctx.url, 'duration', DEFAULT_DURATION_MS, MAX_DURATION_MS) }),
    },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`${SERVICE}/stop$`),
      uses: true,
      handler: (ctx) => stream(ctx, { action: 'stop', timeoutMs: durationParam(ctx.url, 'timeout', 10_000, MAX_STOP_TIMEOUT_MS) }),
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`${SERVICE}/logs$`),
      // Following a service's log wakes a sleeping sprite (its service writes again) and keeps it awake.
      uses: (url) => durationParam(url, 'duration', 0, MAX_DURATION_MS) > 0,
      handler: async (ctx) => {
        const { res, params, url } = ctx;
        const service = checkServiceName(params.service!);
        const lines = countParam(url, 'lines', 100, MAX_LINES);
        const durationMs = durationParam(url, 'duration', 0, MAX_DURATION_MS);
        const record = sprites.get(params.name!);
        if (record.state === 'running' || durationMs > 0) return stream(ctx, { action: 'logs', lines, durationMs });
        // Asleep or stopped: what its log file on this host holds, without starting it.
        if (!record.services.includes(service)) throw new PeerError('ERR_SERVICE_NOT_FOUND', `no service named ${service}`);
        const send = startNdjson(res);
        for (const event of await tailEvents(sprites.serviceLog(params.name!, service), lines)) send(event);
        send({ type: 'complete', timestamp: Date.now() });
        res.end();
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/logs$`),
      handler: async ({ req, res, params, url }) => streamLog(req, res, sprites.initLog(params.name!), flag(url, 'follow')),
    },
  ];
}

/** `http_port: null` (how Sprites shows a service without one) means no port. */
function withoutNullPort(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && (value as Record<string, unknown>).http_port === null) {
    const { http_port: _, ...rest } = value as Record<string, unknown>;
    return rest;
  }
  return value;
}

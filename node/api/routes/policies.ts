import type { IncomingMessage } from 'node:http';
import { PeerError } from '../../errors.ts';
import type { SpriteManager } from '../../sprites.ts';
import { readBody, sendJson } from '../http.ts';
import { NAME, type Route } from '../router.ts';

/** What the policy routes work on. */
export type PolicySprites = Pick<SpriteManager, 'policies'>;

/** A JSON body of any shape: the policy checks (node/policies.ts) say what is allowed. */
async function body(req: IncomingMessage): Promise<unknown> {
  try {
    return JSON.parse((await readBody(req)).toString('utf8') || '{}');
  } catch (error) {
    if (error instanceof PeerError) throw error;
    throw new PeerError('ERR_BAD_REQUEST', 'body is not valid JSON');
  }
}

const POLICY = `^/v1/sprites/${NAME}/policy`;

/**
 * Routes under /v1/sprites/{name}/policy: network, privileges and resources. Sprites' SDK updates
 * with POST; PUT does the same. The owner answers (the server hands the request over), so a read
 * right after a write sees it.
 */
export function policyRoutes(sprites: PolicySprites): Route[] {
  const { policies } = sprites;
  const update = (pattern: string, apply: (name: string, value: unknown) => Promise<void> | void): Route[] =>
    ['POST', 'PUT'].map((method) => ({
      method,
      auth: 'org' as const,
      pattern: new RegExp(`${POLICY}/${pattern}$`),
      handler: async ({ req, res, params }) => {
        await apply(params.name!, await body(req));
        res.writeHead(204).end();
      },
    }));
  return [
    { method: 'GET', auth: 'org', pattern: new RegExp(`${POLICY}/network$`), handler: ({ res, params }) => sendJson(res, 200, policies.network(params.name!)) },
    ...update('network', (name, value) => policies.setNetwork(name, value)),
    { method: 'GET', auth: 'org', pattern: new RegExp(`${POLICY}/privileges$`), handler: ({ res, params }) => sendJson(res, 200, policies.privileges(params.name!)) },
    ...update('privileges', (name, value) => policies.setPrivileges(name, value)),
    {
      method: 'DELETE',
      auth: 'org',
      pattern: new RegExp(`${POLICY}/privileges$`),
      handler: ({ res, params }) => {
        policies.deletePrivileges(params.name!);
        res.writeHead(204).end();
      },
    },
    { method: 'GET', auth: 'org', pattern: new RegExp(`${POLICY}/resources$`), handler: ({ res, params }) => sendJson(res, 200, policies.resources(params.name!)) },
    ...update('resources', (name, value) => policies.setResources(name, value)),
    {
      method: 'DELETE',
      auth: 'org',
      pattern: new RegExp(`${POLICY}/resources$`),
      handler: async ({ res, params }) => {
        await policies.deleteResources(params.name!);
        res.writeHead(204).end();
      },
    },
  ];
}

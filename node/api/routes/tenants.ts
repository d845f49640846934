import { createOrg, createToken, listOrgs, listTokens, revokeToken, type RecordStore } from '../../records/index.ts';
import type { Schema } from '../../schema.ts';
import { readJson, sendJson } from '../http.ts';
import type { Route } from '../router.ts';

const orgSchema: Schema = {
  type: 'object',
  required: ['name'],
  // Name rules are checked by orgs.ts / tokens.ts, which say what the rule is.
  properties: { name: { type: 'string', maxLength: 256 } },
  additionalProperties: false,
};

const tokenSchema: Schema = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', maxLength: 256 }, org: { type: 'string', maxLength: 256 }, admin: { type: 'boolean' } },
  additionalProperties: false,
};

/** Routes under /v1/orgs and /v1/tokens, on the replicated org and token records: admin tokens only. */
export function tenantRoutes(mesh: RecordStore): Route[] {
  return [
    {
      method: 'POST',
      auth: 'admin',
      pattern: /^\/v1\/orgs$/,
      handler: async ({ req, res }) => {
        const body = await readJson<{ name: string }>(req, orgSchema);
        sendJson(res, 201, createOrg(mesh, body.name));
      },
    },
    {
      method: 'GET',
      auth: 'admin',
      pattern: /^\/v1\/orgs$/,
      handler: ({ res }) => {
        sendJson(res, 200, { orgs: listOrgs(mesh.store) });
      },
    },
    {
      method: 'POST',
      auth: 'admin',
      pattern: /^\/v1\/tokens$/,
      handler: async ({ req, res, caller }) => {
        const body = await readJson<{ name: string; org?: string; admin?: boolean }>(req, tokenSchema);
        sendJson(res, 201, createToken(mesh, { name: body.name, org: body.org ?? caller.org, admin: body.admin ?? false }));
      },
    },
    {
      method: 'GET',
      auth: 'admin',
      pattern: /^\/v1\/tokens$/,
      handler: ({ res }) => {
        sendJson(res, 200, { tokens: listTokens(mesh.store) });
      },
    },
    {
      method: 'DELETE',
      auth: 'admin',
      // `token`, not `name`: a `name` group is a sprite name, which the server scopes to the caller's org.
      pattern: /^\/v1\/tokens\/(?<token>[^/]+)$/,
      handler: ({ res, params }) => {
        revokeToken(mesh, params.token!);
        res.writeHead(204).end();
      },
    },
  ];
}

import { PeerError } from '../../errors.ts';
import type { OrgQuotas } from '../../quotas.ts';
import {
  QUOTA_KINDS, createOrg, createToken, listOrgs, listTokens, requireOrg, revokeToken, setOrgQuotas, type QuotaLimits, type RecordStore,
} from '../../records/index.ts';
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

/** An org's own quotas: a whole number sets one, null gives it back to the peer's default; kinds left out stay. */
const quotasSchema: Schema = {
  type: 'object',
  properties: Object.fromEntries(QUOTA_KINDS.map((kind) => [kind, { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, nullable: true }])),
  additionalProperties: false,
};

/** The org group of a path (not `name`: that is a sprite name, which the server scopes to the caller's org). */
const ORG = '(?<org>[^/]+)';

/** Routes under /v1/orgs and /v1/tokens, on the replicated org and token records: admin tokens only. */
export function tenantRoutes(mesh: RecordStore, quotas: Pick<OrgQuotas, 'view'>): Route[] {
  /** One org with its counts and each quota's limit and use. */
  const orgView = (name: string): object => {
    requireOrg(mesh.store, name);
    const org = listOrgs(mesh.store).find((o) => o.name === name);
    if (!org) throw new PeerError('ERR_ORG_NOT_FOUND', `no org named ${name}`);
    return { ...org, quotas: quotas.view(name) };
  };
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
      method: 'GET',
      auth: 'admin',
      pattern: new RegExp(`^/v1/orgs/${ORG}$`),
      handler: ({ res, params }) => {
        sendJson(res, 200, orgView(params.org!));
      },
    },
    {
      method: 'PUT',
      // An org's own token cannot raise its quotas: admin only, as every org route.
      auth: 'admin',
      pattern: new RegExp(`^/v1/orgs/${ORG}/quotas$`),
      handler: async ({ req, res, params }) => {
        const body = await readJson<Partial<QuotaLimits>>(req, quotasSchema);
        setOrgQuotas(mesh, params.org!, body);
        sendJson(res, 200, orgView(params.org!));
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

// `sprite org ...` and `sprite token ...`: organizations and their API tokens (admin tokens only).
import type { Command } from './command.ts';
import { JSON_FLAG, arg, print } from './command.ts';
import { seg } from './client.ts';
import { bytes, integer } from '../option-kinds.ts';
import { UsageError } from './errors.ts';
import { json, table, time } from './format.ts';

interface OrgView {
  name: string;
  created: string;
  sprites: number;
  tokens: number;
}

/** One quota of an org as `GET /v1/orgs/{org}` shows it. */
interface QuotaView {
  limit: number | null;
  used: number;
  source: 'org' | 'default';
}

/** An org with its quotas. */
interface OrgDetail extends OrgView {
  quotas: Record<string, QuotaView>;
}

/** The quota flags of `sprite org quota` and the API's kind each sets. */
const QUOTA_FLAGS = { sprites: 'sprites', running: 'running', checkpoints: 'checkpoints', storage: 'storage_bytes' } as const;

/** A quota flag's value: `default` (null: the peer's default again), or a whole number (a size like 10GiB for storage). */
function quotaValue(flag: string, text: string): number | null {
  if (text === 'default') return null;
  try {
    return (flag === 'storage' ? bytes(0) : integer(0)).fromFlag([text], flag);
  } catch (error) {
    throw new UsageError(`${(error as Error).message} (or default)`);
  }
}

/** An org's quotas as a table: each kind's use, limit and where the limit comes from. */
function quotaTable(org: OrgDetail): string {
  const rows = Object.entries(org.quotas ?? {}).map(([kind, q]) => [kind, String(q.used), q.limit === null ? 'none' : String(q.limit), q.source]);
  return `${org.name}  created ${time(org.created)}  ${org.tokens} tokens\n${table(['QUOTA', 'USED', 'LIMIT', 'FROM'], rows)}`;
}

interface TokenView {
  name: string;
  org: string;
  admin: boolean;
  created: string;
  revoked: boolean;
  /** Only in the answer to create. */
  token?: string;
}

/** Commands that manage orgs and tokens. */
export const tenantCommands: readonly Command[] = [
  {
    words: ['org', 'create'],
    usage: 'NAME [--json]',
    summary: 'create an organization (admin token)',
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => {
      const org = await ctx.client().json<OrgView>('POST', '/v1/orgs', { name: arg(ctx, 0) });
      await print(ctx.io, ctx.args.bool('json') ? json(org) : `${org?.name}\n`);
      return 0;
    },
  },
  {
    words: ['org', 'list'],
    usage: '[--json]',
    summary: 'list organizations with their sprite and live token counts (admin token)',
    spec: { flags: JSON_FLAG },
    required: [],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ orgs: OrgView[] }>('GET', '/v1/orgs');
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.orgs ?? []).map((o) => [o.name, String(o.sprites), String(o.tokens), time(o.created)]);
      await print(ctx.io, table(['ORG', 'SPRITES', 'TOKENS', 'CREATED'], rows));
      return 0;
    },
  },
  {
    words: ['org', 'show'],
    usage: 'ORG [--json]',
    summary: "an org's counts and each quota's use and limit (admin token)",
    spec: { flags: JSON_FLAG },
    required: ['ORG'],
    run: async (ctx) => {
      const org = await ctx.client().json<OrgDetail>('GET', `/v1/orgs/${seg(arg(ctx, 0))}`);
      await print(ctx.io, ctx.args.bool('json') ? json(org) : quotaTable(org!));
      return 0;
    },
  },
  {
    words: ['org', 'quota'],
    usage: 'ORG [--sprites N] [--running N] [--checkpoints N] [--storage BYTES] [--json]',
    summary: "sets an org's own quotas (each N, or `default` for the peer's); shows them (admin token)",
    spec: { flags: { ...JSON_FLAG, ...Object.fromEntries(Object.keys(QUOTA_FLAGS).map((flag) => [flag, { kind: 'string' as const }])) } },
    required: ['ORG'],
    run: async (ctx) => {
      const body: Record<string, number | null> = {};
      for (const [flag, kind] of Object.entries(QUOTA_FLAGS)) {
        const text = ctx.args.string(flag);
        if (text !== undefined) body[kind] = quotaValue(flag, text);
      }
      const path = `/v1/orgs/${seg(arg(ctx, 0))}`;
      const org = Object.keys(body).length === 0 ? await ctx.client().json<OrgDetail>('GET', path) : await ctx.client().json<OrgDetail>('PUT', `${path}/quotas`, body);
      await print(ctx.io, ctx.args.bool('json') ? json(org) : quotaTable(org!));
      return 0;
    },
  },
  {
    words: ['token', 'create'],
    usage: 'NAME [--org ORG] [--admin] [--json]',
    summary: "create an API token of ORG (default: the caller's org) and print it; it is shown only this once (admin token)",
    spec: { flags: { ...JSON_FLAG, org: { kind: 'string' }, admin: { kind: 'boolean' } } },
    required: ['NAME'],
    run: async (ctx) => {
      const org = ctx.args.string('org');
      const body = { name: arg(ctx, 0), ...(org === undefined ? {} : { org }), ...(ctx.args.bool('admin') ? { admin: true } : {}) };
      const created = await ctx.client().json<TokenView>('POST', '/v1/tokens', body);
      await print(ctx.io, ctx.args.bool('json') ? json(created) : `${created?.token}\n`);
      return 0;
    },
  },
  {
    words: ['token', 'list'],
    usage: '[--json]',
    summary: 'list API tokens: name, org, admin, created, revoked; never the secrets (admin token)',
    spec: { flags: JSON_FLAG },
    required: [],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ tokens: TokenView[] }>('GET', '/v1/tokens');
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.tokens ?? []).map((t) => [t.name, t.org, t.admin ? 'yes' : 'no', time(t.created), t.revoked ? 'revoked' : 'active']);
      await print(ctx.io, table(['NAME', 'ORG', 'ADMIN', 'CREATED', 'STATE'], rows));
      return 0;
    },
  },
  {
    words: ['token', 'revoke'],
    usage: 'NAME',
    summary: 'revoke an API token on every peer (admin token)',
    spec: { flags: {} },
    required: ['NAME'],
    run: async (ctx) => {
      await ctx.client().json('DELETE', `/v1/tokens/${seg(arg(ctx, 0))}`);
      return 0;
    },
  },
];

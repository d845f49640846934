// Sprite lifecycle and status commands: create, list, info, destroy, start, stop, restart, logs, pool status.
import type { Command, Context } from './command.ts';
import { JSON_FLAG, arg, print, pump, spritePath } from './command.ts';
import { fields, json, table, time } from './format.ts';
import { networkPolicyPath, policyLines, type NetworkPolicyDoc } from './policy.ts';
import { FOLLOW_FLAG, serviceLogs } from './services.ts';
import type { PoolStatus, Sprite, SpritePage } from './wire.ts';

/** Prints a sprite record's name, or the record itself with --json. */
async function printSprite(ctx: Context, sprite: Sprite | undefined): Promise<number> {
  await print(ctx.io, ctx.args.bool('json') ? json(sprite ?? null) : `${sprite?.name ?? arg(ctx, 0)}\n`);
  return 0;
}

/** Runs `sprite logs NAME [SERVICE] [-f]`: a service's output, or the sprite's own log (text, `?follow=1` with -f). */
async function logsOf(ctx: Context, name: string, service: string | undefined): Promise<number> {
  if (service !== undefined) return serviceLogs(ctx, name, service);
  await pump(ctx.io, await ctx.client().stream(`${spritePath(name)}/logs`, ctx.args.bool('follow') ? [['follow', '1']] : []));
  return 0;
}

/** Every sprite the token sees (whose name starts with `prefix`), page after page, with the org's counts from the last page. */
async function listAll(ctx: Context, prefix: string | undefined): Promise<Omit<SpritePage, 'has_more' | 'next_continuation_token'>> {
  const sprites: Sprite[] = [];
  let token: string | null = null;
  for (;;) {
    const query: URLSearchParams = new URLSearchParams({ max_results: '50', ...(prefix ? { prefix } : {}), ...(token ? { continuation_token: token } : {}) });
    const page: SpritePage | undefined = await ctx.client().json<SpritePage>('GET', `/v1/sprites?${query}`);
    sprites.push(...(page?.sprites ?? []));
    token = page?.has_more ? page.next_continuation_token : null;
    if (!token) return { sprites, name: page?.name ?? '', running: page?.running ?? 0, warm: page?.warm ?? 0, cold: page?.cold ?? 0 };
  }
}

/** Commands that manage sprites themselves. */
export const spriteCommands: readonly Command[] = [
  {
    words: ['create'],
    usage: 'NAME [--image IMAGE] [--json]',
    summary: 'create a sprite (from a base image with --image) and print its name',
    spec: { flags: { ...JSON_FLAG, image: { kind: 'string' } } },
    required: ['NAME'],
    run: async (ctx) => {
      const image = ctx.args.string('image');
      return printSprite(ctx, await ctx.client().json<Sprite>('POST', '/v1/sprites', { name: arg(ctx, 0), ...(image === undefined ? {} : { image }) }));
    },
  },
  {
    words: ['list'],
    usage: '[--prefix PREFIX] [--json]',
    summary: "list the sprites the token sees (its org's; an admin token sees all) with the peer that runs each",
    spec: { flags: { ...JSON_FLAG, prefix: { kind: 'string' } } },
    required: [],
    run: async (ctx) => {
      const answer = await listAll(ctx, ctx.args.string('prefix'));
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      // A sprite whose peer is not alive says so: the next request for it moves it to another peer.
      const owner = (s: Sprite): string => (s.owner_state && s.owner_state !== 'alive' ? `${s.owner} (${s.owner_state})` : s.owner);
      const rows = answer.sprites.map((s) => [s.name, s.status, owner(s), s.organization, time(s.created_at)]);
      await print(ctx.io, table(['NAME', 'STATUS', 'OWNER', 'ORG', 'CREATED'], rows));
      return 0;
    },
  },
  {
    words: ['info'],
    usage: 'NAME [--json]',
    summary: "show a sprite: status, URL, owner, labels, limits, times and network policy",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => {
      const s = await ctx.client().json<Sprite>('GET', spritePath(arg(ctx, 0)));
      if (ctx.args.bool('json') || s === undefined) return printSprite(ctx, s);
      const policy = await ctx.client().json<NetworkPolicyDoc>('GET', networkPolicyPath(s.name));
      const config = (s.config ?? {}) as { ram_mb?: number; cpus?: number };
      await print(ctx.io, fields({
        name: s.name, id: s.id, status: s.status, organization: s.organization, url: s.url, auth: s.url_settings.auth,
        owner: `${s.owner}${s.owner_state ? ` (${s.owner_state})` : ''}`, labels: (s.labels as string[] | undefined)?.join(' ') || undefined,
        memory: config.ram_mb === undefined ? undefined : `${config.ram_mb} MiB`, cpus: config.cpus, version: s.version,
        created: time(s.created_at), updated: time(s.updated_at), 'last running': time(s.last_running_at ?? undefined),
        'network policy': policyLines(policy).join(', '),
      }));
      return 0;
    },
  },
  {
    words: ['restart'],
    usage: 'NAME',
    summary: 'restart a sprite on the same disk: a new sandbox, services started again',
    spec: { flags: {} },
    required: ['NAME'],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ message?: string }>('POST', `${spritePath(arg(ctx, 0))}/restart`);
      await print(ctx.io, `${answer?.message ?? 'restarted'}
`);
      return 0;
    },
  },
  {
    words: ['destroy'],
    usage: 'NAME',
    summary: 'destroy a sprite and its disk',
    spec: { flags: {} },
    required: ['NAME'],
    run: async (ctx) => {
      await ctx.client().json('DELETE', spritePath(arg(ctx, 0)));
      return 0;
    },
  },
  {
    words: ['start'],
    usage: 'NAME [--json]',
    summary: 'start a stopped or failed sprite',
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => printSprite(ctx, await ctx.client().json<Sprite>('POST', `${spritePath(arg(ctx, 0))}/start`)),
  },
  {
    words: ['stop'],
    usage: 'NAME [--json]',
    summary: 'stop a sprite',
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => printSprite(ctx, await ctx.client().json<Sprite>('POST', `${spritePath(arg(ctx, 0))}/stop`)),
  },
  {
    words: ['logs'],
    usage: 'NAME [SERVICE] [-f]',
    summary: "print a service's log, or the sprite's own log; -f follows",
    spec: { flags: FOLLOW_FLAG },
    required: ['NAME'],
    optional: ['SERVICE'],
    run: (ctx) => logsOf(ctx, arg(ctx, 0), ctx.positionals[1]),
  },
  {
    words: ['pool', 'status'],
    usage: '[--json]',
    summary: 'show the warm pool',
    spec: { flags: JSON_FLAG },
    required: [],
    run: async (ctx) => {
      const answer = await ctx.client().json<PoolStatus>('GET', '/v1/pool');
      await print(ctx.io, ctx.args.bool('json') ? json(answer) : fields(answer ?? {}));
      return 0;
    },
  },
];

// Sprite lifecycle and status commands: create, list, destroy, start, stop, logs, pool status.
import type { Command, Context } from './command.ts';
import { JSON_FLAG, arg, print, pump, spritePath } from './command.ts';
import { fields, json, table, time } from './format.ts';
import { FOLLOW_FLAG, serviceLogs } from './services.ts';
import type { PoolStatus, Sprite } from './wire.ts';

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
    usage: '[--json]',
    summary: "list the sprites the token sees (its org's; an admin token sees all) with the peer that runs each",
    spec: { flags: JSON_FLAG },
    required: [],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ sprites: Sprite[] }>('GET', '/v1/sprites');
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      // A sprite whose peer is not alive says so: the next request for it moves it to another peer.
      const owner = (s: Sprite): string => (s.ownerState && s.ownerState !== 'alive' ? `${s.owner} (${s.ownerState})` : s.owner);
      const rows = (answer?.sprites ?? []).map((s) => [s.name, s.state, owner(s), s.org, time(s.created)]);
      await print(ctx.io, table(['NAME', 'STATE', 'OWNER', 'ORG', 'CREATED'], rows));
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

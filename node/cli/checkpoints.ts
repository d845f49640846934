// `sprite checkpoint ...` and `sprite restore`: metadata-only versions of a sprite's disk.
import type { Command } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { seg } from './client.ts';
import { json, table, time } from './format.ts';

interface CheckpointView {
  id: string;
  comment: string;
  created: number;
}

const checkpointsPath = (name: string): string => `${spritePath(name)}/checkpoints`;

/** Commands under `sprite checkpoint`, and `sprite restore`. */
export const checkpointCommands: readonly Command[] = [
  {
    words: ['checkpoint', 'create'],
    usage: 'NAME [-m COMMENT] [--json]',
    summary: "checkpoint a sprite's disk (its processes keep running)",
    spec: { flags: { ...JSON_FLAG, message: { kind: 'string', short: 'm' } } },
    required: ['NAME'],
    run: async (ctx) => {
      const body = { comment: ctx.args.string('message') ?? '' };
      const created = await ctx.client().json<CheckpointView>('POST', checkpointsPath(arg(ctx, 0)), body);
      await print(ctx.io, ctx.args.bool('json') ? json(created) : `${created?.id}\n`);
      return 0;
    },
  },
  {
    words: ['checkpoint', 'list'],
    usage: 'NAME [--json]',
    summary: "list a sprite's checkpoints, oldest first",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ checkpoints: CheckpointView[] }>('GET', checkpointsPath(arg(ctx, 0)));
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.checkpoints ?? []).map((c) => [c.id, time(new Date(c.created).toISOString()), c.comment]);
      await print(ctx.io, table(['ID', 'CREATED', 'COMMENT'], rows));
      return 0;
    },
  },
  {
    words: ['checkpoint', 'info'],
    usage: 'NAME ID [--json]',
    summary: 'show one checkpoint',
    spec: { flags: JSON_FLAG },
    required: ['NAME', 'ID'],
    run: async (ctx) => {
      const found = await ctx.client().json<CheckpointView>('GET', `${checkpointsPath(arg(ctx, 0))}/${seg(arg(ctx, 1))}`);
      await print(ctx.io, ctx.args.bool('json') || !found ? json(found) : `id       ${found.id}\ncreated  ${time(new Date(found.created).toISOString())}\ncomment  ${found.comment}\n`);
      return 0;
    },
  },
  {
    words: ['checkpoint', 'delete'],
    usage: 'NAME ID',
    summary: 'delete a checkpoint',
    spec: { flags: {} },
    required: ['NAME', 'ID'],
    run: async (ctx) => {
      await ctx.client().json('DELETE', `${checkpointsPath(arg(ctx, 0))}/${seg(arg(ctx, 1))}`);
      return 0;
    },
  },
  {
    words: ['restore'],
    usage: 'NAME ID',
    summary: "restore a sprite's disk to a checkpoint (the sprite restarts)",
    spec: { flags: {} },
    required: ['NAME', 'ID'],
    run: async (ctx) => {
      await ctx.client().json('POST', `${checkpointsPath(arg(ctx, 0))}/${seg(arg(ctx, 1))}/restore`);
      return 0;
    },
  },
];

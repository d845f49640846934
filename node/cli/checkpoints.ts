// `sprite checkpoint ...` and `sprite restore`: metadata-only versions of a sprite's disk.
import type { Command } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { seg } from './client.ts';
import { CliError } from './errors.ts';
import { cell, fields, json, table, time } from './format.ts';
import { followProgress } from './ndjson.ts';

/** A checkpoint as the API shows it. */
interface CheckpointView {
  id: string;
  create_time: string;
  comment: string;
  source_id?: string;
  history?: string[];
}

const checkpointsPath = (name: string): string => `${spritePath(name)}/checkpoints`;

/** Commands under `sprite checkpoint`, and `sprite restore`. */
export const checkpointCommands: readonly Command[] = [
  {
    words: ['checkpoint', 'create'],
    usage: 'NAME [-m COMMENT] [--json]',
    summary: "checkpoint a sprite's disk (its processes keep running) and print its id",
    spec: { flags: { ...JSON_FLAG, message: { kind: 'string', short: 'm' } } },
    required: ['NAME'],
    run: async (ctx) => {
      const body = { comment: ctx.args.string('message') ?? '' };
      const done = await followProgress(ctx.io, await ctx.client().stream(`${spritePath(arg(ctx, 0))}/checkpoint`, [], body));
      const id = done?.id;
      if (typeof id !== 'string') throw new CliError('ERR_STREAM_BROKEN', 'the peer ended the checkpoint without naming it');
      if (ctx.args.bool('json')) await print(ctx.io, json(await ctx.client().json<CheckpointView>('GET', `${checkpointsPath(arg(ctx, 0))}/${seg(id)}`)));
      else await print(ctx.io, `${id}\n`);
      return 0;
    },
  },
  {
    words: ['checkpoint', 'list'],
    usage: 'NAME [--history ID] [--json]',
    summary: "list a sprite's checkpoints, oldest first (--history: ID and those it descends from)",
    spec: { flags: { ...JSON_FLAG, history: { kind: 'string' } } },
    required: ['NAME'],
    run: async (ctx) => {
      const history = ctx.args.string('history');
      const path = `${checkpointsPath(arg(ctx, 0))}${history === undefined ? '' : `?history=${encodeURIComponent(history)}`}`;
      const checkpoints = (await ctx.client().json<CheckpointView[]>('GET', path)) ?? [];
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(checkpoints));
        return 0;
      }
      const rows = checkpoints.map((c) => [c.id, time(c.create_time), cell(c.source_id), c.comment]);
      await print(ctx.io, table(['ID', 'CREATED', 'FROM', 'COMMENT'], rows));
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
      if (ctx.args.bool('json') || !found) await print(ctx.io, json(found ?? null));
      else await print(ctx.io, fields({ id: found.id, created: time(found.create_time), from: found.source_id, history: found.history?.join(' ') || undefined, comment: found.comment }));
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
      await followProgress(ctx.io, await ctx.client().raw('POST', `${checkpointsPath(arg(ctx, 0))}/${seg(arg(ctx, 1))}/restore`));
      return 0;
    },
  },
];

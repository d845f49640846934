// `sprite image ...`: base images built on a peer into the shared object store.
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { Command, Context } from './command.ts';
import { JSON_FLAG, arg, print } from './command.ts';
import { seg } from './client.ts';
import { ApiError, CliError, UsageError } from './errors.ts';
import { json, table, time } from './format.ts';
import type { Image } from './wire.ts';
import { progressPrinter } from '../progress.ts';


const SOURCE_FLAGS = ['from-dir', 'from-tar', 'busybox', 'debian'] as const;

/** The build request of `sprite image build`; paths are made absolute (the peer reads them on its host). */
function buildBody(ctx: Context): Record<string, string> {
  const given = SOURCE_FLAGS.filter((flag) => (flag === 'busybox' || flag === 'debian' ? ctx.args.bool(flag) : ctx.args.string(flag) !== undefined));
  if (given.length !== 1) throw new UsageError('image build needs exactly one of --from-dir DIR, --from-tar FILE, --busybox, --debian');
  const debianOnly = ['mirror', 'suite'].filter((flag) => ctx.args.string(flag) !== undefined);
  if (given[0] !== 'debian' && debianOnly.length > 0) throw new UsageError(`--${debianOnly[0]} goes with --debian`);
  const name = arg(ctx, 0);
  switch (given[0]) {
    case 'from-dir': return { name, from: 'dir', path: resolve(ctx.args.string('from-dir')!) };
    case 'from-tar': return { name, from: 'tar', path: resolve(ctx.args.string('from-tar')!) };
    case 'busybox': return { name, from: 'busybox' };
    default: {
      const body: Record<string, string> = { name, from: 'debian' };
      for (const flag of debianOnly) body[flag] = ctx.args.string(flag)!;
      return body;
    }
  }
}

/** Reads the NDJSON build stream: progress goes to stderr (a bar on a terminal), the image (or the error) ends it. */
async function followBuild(ctx: Context, stream: ReadableStream<Uint8Array>): Promise<Image> {
  const lines = createInterface({ input: Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>) });
  const progress = progressPrinter(ctx.io.stderr);
  try {
    for await (const text of lines) {
      if (text.trim() === '') continue;
      const message = JSON.parse(text) as { progress?: string; percent?: number; image?: Image; error?: string; message?: string };
      if (message.progress !== undefined) progress.update(message.progress, message.percent);
      else progress.done();
      if (message.image) return message.image;
      if (message.error) throw new ApiError(200, message.error, message.message ?? message.error);
    }
  } catch (err) {
    progress.done();
    if (err instanceof CliError) throw err;
    throw new CliError('ERR_STREAM_BROKEN', `the build stream from the peer broke off: ${(err as Error).message}`, { cause: err });
  }
  throw new CliError('ERR_STREAM_BROKEN', 'the peer ended the build without saying how it went');
}

/** Commands under `sprite image`. */
export const imageCommands: readonly Command[] = [
  {
    words: ['image', 'build'],
    usage: 'NAME (--from-dir DIR | --from-tar FILE | --busybox | --debian [--suite SUITE] [--mirror URL]) [--json]',
    summary: "build a base image on the peer (paths are on the peer's host; admin token) into the shared object store",
    spec: {
      flags: {
        ...JSON_FLAG, 'from-dir': { kind: 'string' }, 'from-tar': { kind: 'string' }, busybox: { kind: 'boolean' }, debian: { kind: 'boolean' },
        suite: { kind: 'string' }, mirror: { kind: 'string' },
      },
    },
    required: ['NAME'],
    run: async (ctx) => {
      const image = await followBuild(ctx, await ctx.client().stream('/v1/images', [['progress', '1']], buildBody(ctx)));
      await print(ctx.io, ctx.args.bool('json') ? json(image) : `${image.name}\n`);
      return 0;
    },
  },
  {
    words: ['image', 'list'],
    usage: '[--json]',
    summary: 'list the base images of the mesh',
    spec: { flags: JSON_FLAG },
    required: [],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ images: Image[] }>('GET', '/v1/images');
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.images ?? []).map((i) => [i.name, i.source, `${(i.bytes / 1024 ** 2).toFixed(1)} MiB`, i.peer, time(i.created)]);
      await print(ctx.io, table(['NAME', 'SOURCE', 'SIZE', 'BUILT ON', 'CREATED'], rows));
      return 0;
    },
  },
  {
    words: ['image', 'delete'],
    usage: 'NAME',
    summary: 'delete a base image (sprites created from it keep their disks; admin token)',
    spec: { flags: {} },
    required: ['NAME'],
    run: async (ctx) => {
      await ctx.client().json('DELETE', `/v1/images/${seg(arg(ctx, 0))}`);
      return 0;
    },
  },
];

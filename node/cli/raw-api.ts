// `sprite api`: one raw API call, the answer's body copied to stdout as it arrives.
import { readFileSync } from 'node:fs';
import type { Command, Context } from './command.ts';
import { arg, pump, spritePath } from './command.ts';
import { spriteContext } from './context.ts';
import { CliError, UsageError } from './errors.ts';

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD']);

/**
 * The API path of `path`: as is when it starts with /v1/; under the sprite's path when there is a
 * sprite context (`-s` or `.sprite`); under /v1 otherwise.
 */
export function rawApiPath(path: string, sprite: string | undefined): string {
  if (!path.startsWith('/')) path = `/${path}`;
  if (path === '/v1' || path.startsWith('/v1/') || path.startsWith('/v1?')) return path;
  return sprite === undefined ? `/v1${path}` : `${spritePath(sprite)}${path === '/' ? '' : path}`;
}

/** The body of `-d`: the text itself, `@FILE` for a file's contents, `-` for stdin. */
async function bodyOf(ctx: Context, data: string | undefined): Promise<string | undefined> {
  if (data === undefined) return undefined;
  if (data === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.io.stdin) chunks.push(Buffer.from(chunk as Buffer));
    return Buffer.concat(chunks).toString('utf8');
  }
  if (!data.startsWith('@')) return data;
  try {
    return readFileSync(data.slice(1), 'utf8');
  } catch (err) {
    throw new CliError('ERR_BODY_FILE', `cannot read ${data.slice(1)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
}

export const rawApiCommand: Command = {
  words: ['api'],
  usage: '[-s NAME] PATH [-X METHOD] [-d BODY|@FILE|-]',
  summary: 'send one API request and print the answer (PATH under the sprite with -s or .sprite, else under /v1)',
  spec: { flags: { sprite: { kind: 'string', short: 's' }, method: { kind: 'string', short: 'X' }, data: { kind: 'string', short: 'd' } } },
  required: ['PATH'],
  run: async (ctx) => {
    const data = ctx.args.string('data');
    const method = (ctx.args.string('method') ?? (data === undefined ? 'GET' : 'POST')).toUpperCase();
    if (!METHODS.has(method)) throw new UsageError(`-X must be one of ${[...METHODS].join(', ')}`);
    const sprite = spriteContext(ctx.args.string('sprite'), process.cwd())?.name;
    const body = await bodyOf(ctx, data);
    await pump(ctx.io, await ctx.client().raw(method, rawApiPath(arg(ctx, 0), sprite), body));
    return 0;
  },
};

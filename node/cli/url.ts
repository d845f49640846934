// `sprite url NAME`, `sprite url update NAME --auth public|sprite` and `sprite peer ca`: the edge proxy seen from the CLI.
import type { Command } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { UsageError } from './errors.ts';
import { json } from './format.ts';
import type { Sprite } from './wire.ts';

/** URL auth modes the proxy knows (kept in step with proxy/auth.ts). */
const AUTH_MODES = ['sprite', 'public'] as const;

/** Prints the sprite's URL (with --json, its name, URLs and URL settings). */
async function printUrl(ctx: Parameters<Command['run']>[0], sprite: Sprite | undefined): Promise<number> {
  if (ctx.args.bool('json')) {
    await print(ctx.io, json(sprite ? { name: sprite.name, url: sprite.url, http_url: sprite.http_url, url_settings: sprite.url_settings } : null));
    return 0;
  }
  if (!sprite?.url) throw new UsageError('the peer has no proxy listener, so the sprite has no URL there');
  await print(ctx.io, `${sprite.url}\n`);
  return 0;
}

/** Commands about sprite URLs and the mesh CA. */
export const urlCommands: readonly Command[] = [
  {
    words: ['url'],
    usage: 'NAME [--json]',
    summary: "print the sprite's URL on this peer's proxy (--json adds the plain HTTP URL and the URL settings)",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => printUrl(ctx, await ctx.client().json<Sprite>('GET', spritePath(arg(ctx, 0)))),
  },
  {
    words: ['url', 'update'],
    usage: 'NAME --auth public|sprite [--json]',
    summary: "change who may open the sprite's URL, mesh-wide: anyone (public) or holders of an API token (sprite)",
    spec: { flags: { ...JSON_FLAG, auth: { kind: 'string' } } },
    required: ['NAME'],
    run: async (ctx) => {
      const auth = ctx.args.string('auth');
      if (auth === undefined || !(AUTH_MODES as readonly string[]).includes(auth)) throw new UsageError(`--auth must be ${AUTH_MODES.join(' or ')}`);
      return printUrl(ctx, await ctx.client().json<Sprite>('PUT', spritePath(arg(ctx, 0)), { url_settings: { auth } }));
    },
  },
  {
    words: ['peer', 'ca'],
    usage: '',
    summary: 'print the mesh CA certificate (PEM) that clients trust for https://NAME.<domain>/',
    spec: { flags: {} },
    required: [],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ domain: string; ca: string }>('GET', '/v1/proxy/ca');
      await print(ctx.io, answer?.ca ?? '');
      return 0;
    },
  },
];

// The sprite a command works on when its line names none: `-s NAME`, or the `.sprite` file that
// `sprite use` wrote in this directory or one above it.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SPRITE_NAME, SPRITE_NAME_RULE } from '../names.ts';
import type { Command } from './command.ts';
import { arg, print, spritePath } from './command.ts';
import { CliError, UsageError } from './errors.ts';

/** The file `sprite use` writes: `{"sprite": "<name>"}`. */
export const SPRITE_FILE = '.sprite';

/** Where a sprite context came from, for messages. */
export interface SpriteContext {
  name: string;
  /** The `.sprite` file, or undefined for `-s`. */
  file?: string;
}

/** The `.sprite` file in `dir` or the nearest directory above it, with the sprite it names. */
export function findSpriteFile(dir: string): SpriteContext | undefined {
  for (let at = resolve(dir); ; at = dirname(at)) {
    const file = join(at, SPRITE_FILE);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new CliError('ERR_SPRITE_FILE', `cannot read ${file}: ${code ?? String(err)}`, { cause: err });
      if (dirname(at) === at) return undefined;
      continue;
    }
    return { name: parseSpriteFile(file, text), file };
  }
}

function parseSpriteFile(file: string, text: string): string {
  let name: unknown;
  try {
    name = (JSON.parse(text) as { sprite?: unknown }).sprite;
  } catch {
    // A plain name on one line is accepted too.
    name = text.trim();
  }
  if (typeof name !== 'string' || !SPRITE_NAME.test(name)) throw new CliError('ERR_SPRITE_FILE', `${file} does not name a sprite (${SPRITE_NAME_RULE})`);
  return name;
}

/** The sprite named by `-s`, else by a `.sprite` file from `cwd` up; undefined when neither. */
export function spriteContext(flag: string | undefined, cwd: string): SpriteContext | undefined {
  if (flag === undefined) return findSpriteFile(cwd);
  if (!SPRITE_NAME.test(flag)) throw new UsageError(`-s: ${SPRITE_NAME_RULE}`);
  return { name: flag };
}

export const useCommand: Command = {
  words: ['use'],
  usage: '[NAME] [--unset]',
  summary: `make NAME the sprite of commands run in this directory (writes ${SPRITE_FILE}); no NAME shows it`,
  spec: { flags: { unset: { kind: 'boolean' } } },
  required: [],
  optional: ['NAME'],
  run: async (ctx) => {
    const file = join(process.cwd(), SPRITE_FILE);
    if (ctx.args.bool('unset')) {
      if (ctx.positionals.length > 0) throw new UsageError('--unset takes no NAME');
      rmSync(file, { force: true });
      return 0;
    }
    if (ctx.positionals.length === 0) {
      const current = findSpriteFile(process.cwd());
      if (current === undefined) throw new CliError('ERR_NO_SPRITE', `no ${SPRITE_FILE} here or above; 'sprite use NAME' writes one`);
      await print(ctx.io, `${current.name}\t${current.file}\n`);
      return 0;
    }
    const name = arg(ctx, 0);
    if (!SPRITE_NAME.test(name)) throw new UsageError(SPRITE_NAME_RULE);
    // Only a sprite this token can see: a typo fails now, not at the next command.
    await ctx.client().json('GET', spritePath(name));
    writeFileSync(file, `${JSON.stringify({ sprite: name })}\n`);
    return 0;
  },
};

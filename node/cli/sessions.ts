// `sprite sessions ...`: list, attach to and kill the TTY sessions of a sprite.
import type { Command } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { seg } from './client.ts';
import { DETACH_KEY } from './exec.ts';
import { commandLine, json, table, time } from './format.ts';
import { interact } from './interactive.ts';
import type { Session } from './wire.ts';

/** Commands under `sprite sessions`. */
export const sessionCommands: readonly Command[] = [
  {
    words: ['sessions', 'list'],
    usage: 'NAME [--json]',
    summary: "list a sprite's TTY sessions",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ sessions: Session[] }>('GET', `${spritePath(arg(ctx, 0))}/sessions`);
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.sessions ?? []).map((s) => [
        s.id,
        s.attached ? 'yes' : 'no',
        time(s.created),
        commandLine(s.command),
      ]);
      await print(ctx.io, table(['ID', 'ATTACHED', 'CREATED', 'COMMAND'], rows));
      return 0;
    },
  },
  {
    words: ['sessions', 'attach'],
    usage: 'NAME ID',
    summary: 'attach to a TTY session (Ctrl-] detaches)',
    spec: { flags: {} },
    required: ['NAME', 'ID'],
    run: (ctx) =>
      interact(ctx, {
        name: arg(ctx, 0),
        path: `${spritePath(arg(ctx, 0))}/sessions/${seg(arg(ctx, 1))}/attach`,
        query: [],
        bridge: { tty: true, sendInitialSize: true, detachKey: DETACH_KEY },
      }),
  },
  {
    words: ['sessions', 'kill'],
    usage: 'NAME ID',
    summary: "kill a session's process",
    spec: { flags: {} },
    required: ['NAME', 'ID'],
    run: async (ctx) => {
      await ctx.client().json('DELETE', `${spritePath(arg(ctx, 0))}/sessions/${seg(arg(ctx, 1))}`);
      return 0;
    },
  },
];

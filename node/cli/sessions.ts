// `sprite sessions ...`: list, attach to and kill the exec sessions of a sprite.
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { Command } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { seg } from './client.ts';
import { CliError } from './errors.ts';
import { DETACH_KEY } from './exec.ts';
import { json, table, time } from './format.ts';
import { interact } from './interactive.ts';
import type { Session } from './wire.ts';

/** One line of a kill's progress. */
interface KillEvent {
  type: string;
  message?: string;
  exit_code?: number;
}

/** Commands under `sprite sessions`. */
export const sessionCommands: readonly Command[] = [
  {
    words: ['sessions', 'list'],
    usage: 'NAME [--json]',
    summary: "list a sprite's exec sessions",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ sessions: Session[] }>('GET', `${spritePath(arg(ctx, 0))}/exec`);
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.sessions ?? []).map((s) => [
        s.id,
        s.is_active ? 'yes' : 'no',
        s.tty ? 'yes' : 'no',
        time(s.created),
        s.command,
      ]);
      await print(ctx.io, table(['ID', 'ATTACHED', 'TTY', 'CREATED', 'COMMAND'], rows));
      return 0;
    },
  },
  {
    words: ['sessions', 'attach'],
    usage: 'NAME ID',
    summary: 'attach to a session (Ctrl-] detaches from a terminal session)',
    spec: { flags: {} },
    required: ['NAME', 'ID'],
    run: (ctx) =>
      interact(ctx, {
        name: arg(ctx, 0),
        path: `${spritePath(arg(ctx, 0))}/exec/${seg(arg(ctx, 1))}`,
        query: [],
        bridge: { tty: 'auto', sendInitialSize: true, detachKey: DETACH_KEY },
        detachable: true,
      }),
  },
  {
    words: ['sessions', 'kill'],
    usage: 'NAME ID [--signal SIG] [--timeout DURATION]',
    summary: "signal a session's process group (SIGTERM), SIGKILL it after the timeout (10s)",
    spec: { flags: { signal: { kind: 'string' }, timeout: { kind: 'string' } } },
    required: ['NAME', 'ID'],
    run: async (ctx) => {
      const query: Array<[string, string]> = [];
      const signal = ctx.args.string('signal');
      const timeout = ctx.args.string('timeout');
      if (signal !== undefined) query.push(['signal', signal]);
      if (timeout !== undefined) query.push(['timeout', timeout]);
      const body = await ctx.client().stream(`${spritePath(arg(ctx, 0))}/exec/${seg(arg(ctx, 1))}/kill`, query, {});
      const lines = createInterface({ input: Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>) });
      for await (const line of lines) {
        if (line.trim() === '') continue;
        const event = JSON.parse(line) as KillEvent;
        if (event.type === 'error') throw new CliError('ERR_KILL', event.message ?? 'the kill failed');
        if (event.type === 'complete') return 0;
        ctx.io.stderr.write(`${event.message ?? event.type}\n`);
      }
      throw new CliError('ERR_STREAM_BROKEN', 'the kill ended without completing');
    },
  },
];

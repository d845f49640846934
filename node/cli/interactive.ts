// Commands that hold a connection open: exec, console and proxy.
import type { Command, Context } from './command.ts';
import { arg, print, spritePath } from './command.ts';
import { parseEnv, parsePort } from './args.ts';
import type { Query } from './client.ts';
import { CliError } from './errors.ts';
import type { BridgeOptions } from './exec.ts';
import { DETACH_KEY, bridge, execQuery } from './exec.ts';
import { forwardPorts } from './port-forward.ts';
import { startProxy } from './proxy.ts';
import type { Sprite } from './wire.ts';

/** Where an interactive session connects and how it bridges the terminal. */
export interface InteractInit {
  /** Sprite name, for messages. */
  name: string;
  /** API path of the WebSocket. */
  path: string;
  /** Its query. */
  query: Query;
  /** Bridge options. */
  bridge: BridgeOptions;
  /** The session outlives this client (console, attach): a lost connection says how to reattach. */
  detachable: boolean;
  /** Forward the ports the command opens to the same local ports while it runs. */
  forwardPorts?: boolean;
}

/** Opens an exec/attach WebSocket, bridges the terminal, and turns the outcome into an exit status. */
export async function interact(ctx: Context, init: InteractInit): Promise<number> {
  const ws = await ctx.client().socket(init.path, init.query);
  const forwards = init.forwardPorts === true ? forwardPorts(init.name, ctx.client(), (line) => ctx.io.stderr.write(`sprite: ${line}\n`)) : undefined;
  const result = await bridge(ws, ctx.io, { ...init.bridge, onPort: forwards?.onEvent });
  await forwards?.stop();
  const reattach = (id: string): string => `'sprite sessions attach ${init.name} ${id}'`;
  switch (result.kind) {
    case 'exit':
      return result.code;
    case 'detached':
      ctx.io.stderr.write(
        result.sessionId === undefined || !init.detachable ? '\ndetached\n' : `\ndetached; reattach with ${reattach(result.sessionId)}\n`,
      );
      return 0;
    case 'lost': {
      const why = result.reason === '' ? ` (close code ${result.code})` : `: ${result.reason}`;
      const hint = result.sessionId === undefined || !init.detachable ? '' : `; the session keeps running, reattach with ${reattach(result.sessionId)}`;
      throw new CliError('ERR_CONNECTION_LOST', `connection to sprite '${init.name}' closed without an exit status${why}${hint}`);
    }
  }
}

/** Runs a command line in a sprite over the exec WebSocket; a detachable one survives its client. */
function execIn(ctx: Context, name: string, cmd: readonly string[], tty: boolean, detachable = false, forwardPorts = false): Promise<number> {
  const { stdout } = ctx.io;
  // A pty can report 0x0 (e.g. under script(1)); the server then uses its 80x24 default.
  const size = tty && stdout.isTTY === true && stdout.columns > 0 && stdout.rows > 0 ? { cols: stdout.columns, rows: stdout.rows } : {};
  return interact(ctx, {
    name,
    path: `${spritePath(name)}/exec`,
    query: execQuery(cmd, { tty, detachable, ...size, dir: ctx.args.string('dir'), env: ctx.args.list('env') }),
    // Ctrl-] leaves a detachable terminal session running.
    bridge: { tty, detachKey: detachable ? DETACH_KEY : undefined },
    detachable,
    forwardPorts,
  });
}

/** Waits for SIGINT or SIGTERM. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop).off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop).on('SIGTERM', stop);
  });
}

/** Commands that hold a connection open. */
export const interactiveCommands: readonly Command[] = [
  {
    words: ['exec'],
    usage: '[-t] [--detachable] [--no-port-forward] [--dir D] [--env K=V ...] NAME -- CMD [ARGS...]',
    summary: 'run a command in a sprite; -t allocates a terminal, --detachable keeps it running after a disconnect; ports it opens are forwarded to the same local ports',
    spec: {
      flags: { tty: { kind: 'boolean', short: 't' }, detachable: { kind: 'boolean' }, 'no-port-forward': { kind: 'boolean' }, dir: { kind: 'string' }, env: { kind: 'list' } },
      restAfter: 1,
    },
    required: ['NAME'],
    needsCommand: true,
    run: (ctx) => {
      // Validate K=V here so a typo is a usage error, not an API one.
      parseEnv(ctx.args.list('env'));
      return execIn(ctx, arg(ctx, 0), ctx.args.rest ?? [], ctx.args.bool('tty'), ctx.args.bool('detachable'), !ctx.args.bool('no-port-forward'));
    },
  },
  {
    words: ['console'],
    usage: 'NAME',
    summary: 'open a login shell in a sprite that survives disconnects (Ctrl-] detaches)',
    spec: { flags: {} },
    required: ['NAME'],
    run: (ctx) => execIn(ctx, arg(ctx, 0), ['/bin/sh', '-l'], true, true),
  },
  {
    words: ['proxy'],
    usage: 'NAME PORT [LOCALPORT]',
    summary: 'forward 127.0.0.1:LOCALPORT (default PORT, 0 = any) to PORT inside a sprite',
    spec: { flags: {} },
    required: ['NAME', 'PORT'],
    optional: ['LOCALPORT'],
    run: async (ctx) => {
      const name = arg(ctx, 0);
      const port = parsePort(arg(ctx, 1), 'PORT');
      const local = ctx.positionals[2];
      const localPort = local === undefined ? port : parsePort(local, 'LOCALPORT', true);
      const client = ctx.client();
      // Fail now on a missing sprite or unreachable peer, not on the first connection.
      await client.json<Sprite>('GET', spritePath(name));
      const proxy = await startProxy(
        { name, port, localPort },
        { client, report: (line) => ctx.io.stderr.write(`sprite: ${line}\n`) },
      ).catch((err: unknown) => {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        throw new CliError('ERR_LISTEN', `cannot listen on 127.0.0.1:${localPort}: ${code}`, { cause: err });
      });
      await print(ctx.io, `listening on 127.0.0.1:${proxy.port}\n`);
      await untilSignal();
      await proxy.stop();
      return 0;
    },
  },
];

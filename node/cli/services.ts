// `sprite services ...`: supervised services: define, list, start, stop, restart, signal, logs.
import type { Command, Context } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { parseEnv, parsePort } from './args.ts';
import { seg, type Query } from './client.ts';
import { cell, commandLine, fields, json, table, time } from './format.ts';
import { showServiceEvents } from './ndjson.ts';
import type { Service } from './wire.ts';

/** The API path of one service. */
function servicePath(name: string, svc: string): string {
  return `${spritePath(name)}/services/${seg(svc)}`;
}

/** The `-f` flag of log commands. */
export const FOLLOW_FLAG = Object.freeze({ follow: { kind: 'boolean', short: 'f' } as const });

/** How long `-f` follows a service's log: the API's longest. */
const FOLLOW_FOR = '24h';

/** Prints a service's log (the last `--lines`, 100 unless given; `-f` follows). */
export async function serviceLogs(ctx: Context, name: string, svc: string): Promise<number> {
  const query: [string, string][] = [['lines', ctx.args.string('lines') ?? '100']];
  if (ctx.args.bool('follow')) query.push(['duration', FOLLOW_FOR]);
  await showServiceEvents(ctx.io, await ctx.client().stream(`${servicePath(name, svc)}/logs`, query), { lifecycle: false });
  return 0;
}

/** Runs an action that streams the service's events (start, stop, restart) and shows them. */
async function streamAction(ctx: Context, action: string, query: Query): Promise<number> {
  const body = await ctx.client().raw('POST', `${servicePath(arg(ctx, 0), arg(ctx, 1))}/${action}`, undefined, query);
  await showServiceEvents(ctx.io, body, { lifecycle: true });
  return 0;
}

/** `--duration D` as a query, when given. */
function durationQuery(ctx: Context, fallback?: string): Query {
  const duration = ctx.args.string('duration') ?? fallback;
  return duration === undefined ? [] : [['duration', duration]];
}

const DURATION_FLAG = Object.freeze({ duration: { kind: 'string' } as const });

/** Commands under `sprite services`. */
export const serviceCommands: readonly Command[] = [
  {
    words: ['services', 'list'],
    usage: 'NAME [--json]',
    summary: "list a sprite's services",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => {
      const services = (await ctx.client().json<Service[]>('GET', `${spritePath(arg(ctx, 0))}/services`)) ?? [];
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(services));
        return 0;
      }
      const rows = services.map((s) => [
        s.name, s.state?.status ?? '-', cell(s.state?.pid), cell(s.state?.restart_count), cell(s.http_port), s.needs?.join(',') || '-', commandLine([s.cmd, ...(s.args ?? [])]),
      ]);
      await print(ctx.io, table(['NAME', 'STATUS', 'PID', 'RESTARTS', 'HTTP', 'NEEDS', 'COMMAND'], rows));
      return 0;
    },
  },
  {
    words: ['services', 'create'],
    usage: 'NAME SVC [--http-port P] [--dir D] [--env K=V ...] [--needs SVC ...] [--duration D] [--json] -- CMD [ARGS...]',
    summary: 'create or replace a service and start it; --duration shows its first output (e.g. 5s)',
    spec: {
      flags: { ...JSON_FLAG, ...DURATION_FLAG, 'http-port': { kind: 'string' }, dir: { kind: 'string' }, env: { kind: 'list' }, needs: { kind: 'list' } },
      restAfter: 2,
    },
    required: ['NAME', 'SVC'],
    needsCommand: true,
    run: async (ctx) => {
      const [cmd, ...args] = ctx.args.rest ?? [];
      const port = ctx.args.string('http-port');
      const env = ctx.args.list('env');
      const body = {
        cmd,
        args,
        ...(env.length > 0 ? { env: parseEnv(env) } : {}),
        ...(ctx.args.string('dir') !== undefined ? { dir: ctx.args.string('dir') } : {}),
        needs: ctx.args.list('needs'),
        ...(port !== undefined ? { http_port: parsePort(port, '--http-port') } : {}),
      };
      const path = servicePath(arg(ctx, 0), arg(ctx, 1));
      await showServiceEvents(ctx.io, await ctx.client().raw('PUT', path, JSON.stringify(body), durationQuery(ctx, '0s')), { lifecycle: ctx.args.string('duration') !== undefined });
      if (ctx.args.bool('json')) await print(ctx.io, json((await ctx.client().json<Service>('GET', path)) ?? null));
      else await print(ctx.io, `${arg(ctx, 1)}\n`);
      return 0;
    },
  },
  {
    words: ['services', 'get'],
    usage: 'NAME SVC [--json]',
    summary: 'show one service',
    spec: { flags: JSON_FLAG },
    required: ['NAME', 'SVC'],
    run: async (ctx) => {
      const s = await ctx.client().json<Service>('GET', servicePath(arg(ctx, 0), arg(ctx, 1)));
      if (ctx.args.bool('json') || s === undefined) {
        await print(ctx.io, json(s ?? null));
        return 0;
      }
      await print(ctx.io, fields({
        name: s.name, status: s.state?.status, pid: s.state?.pid, restarts: s.state?.restart_count, started: s.state?.started_at && time(s.state.started_at),
        error: s.state?.error, 'next restart': s.state?.next_restart_at && time(s.state.next_restart_at), http_port: s.http_port, needs: s.needs?.join(',') || undefined,
        dir: s.dir, cmd: commandLine([s.cmd, ...(s.args ?? [])]),
      }));
      return 0;
    },
  },
  {
    words: ['services', 'delete'],
    usage: 'NAME SVC',
    summary: 'stop and remove a service',
    spec: { flags: {} },
    required: ['NAME', 'SVC'],
    run: async (ctx) => {
      await ctx.client().json('DELETE', servicePath(arg(ctx, 0), arg(ctx, 1)));
      return 0;
    },
  },
  {
    words: ['services', 'start'],
    usage: 'NAME SVC [--duration D]',
    summary: 'start a service (and those it needs), showing its output for --duration (5s)',
    spec: { flags: DURATION_FLAG },
    required: ['NAME', 'SVC'],
    run: (ctx) => streamAction(ctx, 'start', durationQuery(ctx)),
  },
  {
    words: ['services', 'stop'],
    usage: 'NAME SVC [--timeout D]',
    summary: 'stop a service: SIGTERM, then SIGKILL after --timeout (10s)',
    spec: { flags: { timeout: { kind: 'string' } } },
    required: ['NAME', 'SVC'],
    run: (ctx) => streamAction(ctx, 'stop', ctx.args.string('timeout') === undefined ? [] : [['timeout', ctx.args.string('timeout')!]]),
  },
  {
    words: ['services', 'restart'],
    usage: 'NAME SVC [--duration D]',
    summary: 'stop a service if it runs and start it again, showing its output for --duration (5s)',
    spec: { flags: DURATION_FLAG },
    required: ['NAME', 'SVC'],
    run: (ctx) => streamAction(ctx, 'restart', durationQuery(ctx)),
  },
  {
    words: ['services', 'signal'],
    usage: 'NAME SVC SIGNAL',
    summary: 'send a signal (TERM, HUP, KILL, USR1, ...) to a service',
    spec: { flags: {} },
    required: ['NAME', 'SVC', 'SIGNAL'],
    run: async (ctx) => {
      await ctx.client().json('POST', `${spritePath(arg(ctx, 0))}/services/signal`, { name: arg(ctx, 1), signal: arg(ctx, 2) });
      return 0;
    },
  },
  {
    words: ['services', 'logs'],
    usage: 'NAME SVC [--lines N] [-f]',
    summary: "print a service's recent output; -f follows",
    spec: { flags: { ...FOLLOW_FLAG, lines: { kind: 'string' } } },
    required: ['NAME', 'SVC'],
    run: (ctx) => serviceLogs(ctx, arg(ctx, 0), arg(ctx, 1)),
  },
];

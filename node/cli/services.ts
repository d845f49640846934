// `sprite services ...`: list, create (PUT), get, delete and logs of supervised services.
import type { Command } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { parseEnv, parsePort } from './args.ts';
import { seg } from './client.ts';
import { cell, commandLine, fields, json, table, time } from './format.ts';
import { FOLLOW_FLAG, logsOf } from './sprites.ts';
import type { Service } from './wire.ts';

/** The API path of one service. */
function servicePath(name: string, svc: string): string {
  return `${spritePath(name)}/services/${seg(svc)}`;
}

/** Commands under `sprite services`. */
export const serviceCommands: readonly Command[] = [
  {
    words: ['services', 'list'],
    usage: 'NAME [--json]',
    summary: "list a sprite's services",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ services: Service[] }>('GET', `${spritePath(arg(ctx, 0))}/services`);
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.services ?? []).map((s) => [
        s.name,
        s.state,
        cell(s.pid),
        cell(s.restarts),
        cell(s.httpPort),
        commandLine([s.cmd, ...(s.args ?? [])]),
      ]);
      await print(ctx.io, table(['NAME', 'STATE', 'PID', 'RESTARTS', 'HTTP', 'COMMAND'], rows));
      return 0;
    },
  },
  {
    words: ['services', 'create'],
    usage: 'NAME SVC [--http-port P] [--dir D] [--env K=V ...] [--json] -- CMD [ARGS...]',
    summary: 'create or replace a service',
    spec: {
      flags: { ...JSON_FLAG, 'http-port': { kind: 'string' }, dir: { kind: 'string' }, env: { kind: 'list' } },
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
        ...(port !== undefined ? { httpPort: parsePort(port, '--http-port') } : {}),
      };
      const service = await ctx.client().json<Service>('PUT', servicePath(arg(ctx, 0), arg(ctx, 1)), body);
      await print(ctx.io, ctx.args.bool('json') ? json(service ?? null) : `${service?.name ?? arg(ctx, 1)}\n`);
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
      const shown: Record<string, unknown> = { ...s, args: undefined, cmd: commandLine([s.cmd, ...(s.args ?? [])]) };
      if (typeof s['started'] === 'string') shown['started'] = time(s['started']);
      await print(ctx.io, fields(shown));
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
    words: ['services', 'logs'],
    usage: 'NAME SVC [-f]',
    summary: "print a service's log; -f follows",
    spec: { flags: FOLLOW_FLAG },
    required: ['NAME', 'SVC'],
    run: (ctx) => logsOf(ctx, arg(ctx, 0), arg(ctx, 1)),
  },
];

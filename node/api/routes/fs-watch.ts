import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { FsError, fsRequest, jsonLines } from '../../../vm/index.ts';
import { validate, type Schema } from '../../schema.ts';
import { ANSWERS, checked, openAgent, pathSchema, resolvePath, type FsSprites } from '../fs-wire.ts';
import { NAME, type WsRoute } from '../router.ts';

const MAX_SUBSCRIPTIONS = 8;
// Above this many bytes queued for the client, stop reading events until it catches up.
const HIGH_WATER = 1024 * 1024;

const subscribeSchema: Schema = {
  type: 'object',
  properties: {
    type: { type: 'string', pattern: '^subscribe$' },
    paths: { type: 'array', items: pathSchema, maxItems: 64 },
    recursive: { type: 'boolean' },
    workingDir: pathSchema,
  },
  required: ['type', 'paths'],
  additionalProperties: false,
};
const eventSchema: Schema = {
  type: 'object',
  properties: { path: pathSchema, event: { type: 'string', pattern: '^(write|create|remove|rename|chmod)$' }, size: { type: 'integer', minimum: 0 }, isDir: { type: 'boolean' } },
  required: ['path', 'event'],
  additionalProperties: false,
};
const errorSchema: Schema = { type: 'object', properties: { error: { type: 'string', maxLength: 1024 } }, required: ['error'], additionalProperties: false };

/**
 * GET /v1/sprites/{name}/fs/watch: a WebSocket of JSON text messages. The client sends
 * `{type: "subscribe", paths, recursive, workingDir}` (more than once to watch more); the server
 * answers `{type: "subscribed", paths}`, then `{type: "event", path, event, timestamp, size, isDir}`
 * per change, and `{type: "error", message}` when something fails. Each subscription is a watch in
 * the sprite's file agent.
 */
export function fsWatchRoutes(sprites: FsSprites): WsRoute[] {
  return [{
    method: 'GET',
    auth: 'org',
    pattern: new RegExp(`^/v1/sprites/${NAME}/fs/watch$`),
    open: async ({ params }) => {
      // Woken (or refused) before the upgrade, so a stopped sprite answers as plain HTTP.
      await sprites.awake(params.name!);
      return (ws) => serveWatch(ws, () => openAgent(sprites, params.name!, false));
    },
  }];
}

function serveWatch(ws: WebSocket, open: () => Promise<Socket>): void {
  const agents = new Set<Socket>();
  const send = (message: object): Promise<void> => new Promise((resolve) => {
    if (ws.readyState !== ws.OPEN) return resolve();
    // Resolves at once unless the client is behind; then once this message went out.
    ws.send(JSON.stringify(message), () => resolve());
    if (ws.bufferedAmount <= HIGH_WATER) resolve();
  });
  const fail = (error: unknown): Promise<void> => send({
    type: 'error', message: (error as Error).message, ...(error instanceof FsError && error.path ? { path: error.path } : {}),
  });
  ws.on('close', () => {
    for (const agent of agents) agent.destroy();
  });
  ws.on('error', () => undefined);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    let message: unknown;
    try {
      message = isBinary ? undefined : JSON.parse(data.toString('utf8'));
    } catch {
      message = undefined;
    }
    const problem = validate(subscribeSchema, message, 'message');
    if (problem) return void fail(new Error(`expected {"type": "subscribe", "paths": [...]}: ${problem}`));
    if (agents.size >= MAX_SUBSCRIPTIONS) return void fail(new Error(`at most ${MAX_SUBSCRIPTIONS} subscriptions per connection`));
    const { paths, recursive, workingDir } = message as { paths: string[]; recursive?: boolean; workingDir?: string };
    void (async () => {
      let agent: Socket | undefined;
      try {
        const resolved = paths.map((path) => resolvePath(path, workingDir ?? '/'));
        agent = await open();
        agents.add(agent);
        if (ws.readyState !== ws.OPEN) return;
        checked(ANSWERS.watch, (await fsRequest(agent, { op: 'watch', paths: resolved, recursive: recursive === true })).result);
        await send({ type: 'subscribed', paths: resolved });
        for await (const line of jsonLines(agent)) {
          if (validate(errorSchema, line) === undefined) {
            await send({ type: 'error', message: (line as { error: string }).error });
            continue;
          }
          const event = checked<{ path: string; event: string; size?: number; isDir?: boolean }>(eventSchema, line);
          await send({ type: 'event', path: event.path, event: event.event, timestamp: new Date().toISOString(), size: event.size, isDir: event.isDir });
        }
        // The agent closed its end: the sprite stopped or slept cold, or the agent died.
        if (ws.readyState === ws.OPEN) await fail(new Error(`the watch of ${resolved.join(', ')} ended; subscribe again to resume`));
      } catch (error) {
        if (ws.readyState === ws.OPEN) await fail(error);
      } finally {
        if (agent) {
          agents.delete(agent);
          agent.destroy();
        }
      }
    })();
  });
}

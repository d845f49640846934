import type { SessionInfo } from '../../../vm/index.ts';
import { CONTROL, decodeControl, readFrames } from '../../../vm/index.ts';
import type { SpriteManager } from '../../sprites.ts';
import { parseKillQuery } from '../exec-query.ts';
import { sendJson } from '../http.ts';
import { NAME, type Route } from '../router.ts';
import { execHttpRoute } from './exec-http.ts';

/** What the session routes work on: the sprite's control connection, woken if it sleeps. */
export type SessionSprites = Pick<SpriteManager, 'awake'>;

/**
 * Plain routes under /v1/sprites/{name}/exec: list the sessions, kill one with progress, and
 * exec over HTTP (the exec and attach WebSockets are in exec.ts).
 */
export function sessionRoutes(sprites: SessionSprites): Route[] {
  return [
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/exec$`),
      uses: true,
      handler: async ({ res, params }) => {
        const sessions = await (await sprites.awake(params.name!)).call<SessionInfo[]>({ op: 'sessions.list' });
        sendJson(res, 200, { sessions });
      },
    },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/exec/(?<id>[^/]+)/kill$`),
      uses: true,
      handler: async ({ res, params, url }) => {
        const { signal, timeoutMs } = parseKillQuery(url);
        const { socket } = await (await sprites.awake(params.name!)).stream({ op: 'sessions.kill', id: params.id, signal, timeoutMs });
        // Progress as NDJSON, one SessionKillEvent a line, ending with `complete` (or `error`).
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        let ended = false;
        readFrames(socket, (payload) => {
          if (payload[0] !== CONTROL) return;
          const event = decodeControl(payload) as { type?: string };
          ended ||= event?.type === 'complete' || event?.type === 'error';
          res.write(`${JSON.stringify(event)}\n`);
        });
        socket.on('error', () => undefined);
        socket.once('close', () => {
          if (!ended) res.write(`${JSON.stringify({ type: 'error', message: 'the sprite closed the kill before it completed' })}\n`);
          res.end();
        });
        res.once('close', () => socket.destroy());
      },
    },
    execHttpRoute(sprites),
  ];
}

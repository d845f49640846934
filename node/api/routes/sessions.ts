import type { SessionInfo } from '../../../vm/index.ts';
import type { SpriteManager } from '../../sprites.ts';
import { sendJson } from '../http.ts';
import { NAME, type Route } from '../router.ts';

/** What the session routes work on: the sprite's control connection, woken if it sleeps. */
export type SessionSprites = Pick<SpriteManager, 'awake'>;

/** Routes under /v1/sprites/{name}/sessions: list and kill (attaching is a WebSocket route, exec.ts). */
export function sessionRoutes(sprites: SessionSprites): Route[] {
  return [
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/sprites/${NAME}/sessions$`),
      uses: true,
      handler: async ({ res, params }) => {
        const sessions = await (await sprites.awake(params.name!)).call<SessionInfo[]>({ op: 'sessions.list' });
        sendJson(res, 200, { sessions });
      },
    },
    {
      method: 'DELETE',
      pattern: new RegExp(`^/v1/sprites/${NAME}/sessions/(?<id>[^/]+)$`),
      uses: true,
      handler: async ({ res, params }) => {
        await (await sprites.awake(params.name!)).call({ op: 'sessions.kill', id: params.id });
        res.writeHead(204).end();
      },
    },
  ];
}

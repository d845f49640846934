import type { SpriteManager } from '../../sprites.ts';
import { PeerError } from '../../errors.ts';
import { flag } from '../http.ts';
import { NAME, type WsRoute } from '../router.ts';
import { bridgeBytes, bridgeExec } from '../ws.ts';

/** What the WebSocket routes work on: the sprite's control connection, woken if it sleeps. */
export type ExecSprites = Pick<SpriteManager, 'awake'>;

/** WebSocket routes into a sprite: exec, attaching to a session, and a port proxy. */
export function execRoutes(sprites: ExecSprites): WsRoute[] {
  return [
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/sprites/${NAME}/exec$`),
      open: async ({ params, url }) => {
        const command = url.searchParams.getAll('cmd');
        if (command.length === 0) throw new PeerError('ERR_BAD_REQUEST', 'exec needs at least one cmd parameter');
        const env: Record<string, string> = {};
        for (const pair of url.searchParams.getAll('env')) {
          const eq = pair.indexOf('=');
          if (eq < 1) throw new PeerError('ERR_BAD_REQUEST', `env must be K=V, got ${pair}`);
          env[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
        const dir = url.searchParams.get('dir') ?? undefined;
        if (dir !== undefined && !dir.startsWith('/')) throw new PeerError('ERR_BAD_REQUEST', 'dir must be an absolute path');
        const tty = flag(url, 'tty');
        const stream = await (await sprites.awake(params.name!)).open({
          op: 'exec', command, env, dir, tty, cols: size(url, 'cols', 80), rows: size(url, 'rows', 24),
        });
        return (ws) => bridgeExec(ws, stream);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/sprites/${NAME}/sessions/(?<id>[^/]+)/attach$`),
      open: async ({ params }) => {
        const stream = await (await sprites.awake(params.name!)).open({ op: 'attach', id: params.id });
        return (ws) => bridgeExec(ws, stream);
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/sprites/${NAME}/proxy$`),
      open: async ({ params, url }) => {
        const port = Number(url.searchParams.get('port'));
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new PeerError('ERR_BAD_REQUEST', 'port must be 1-65535');
        const stream = await (await sprites.awake(params.name!)).open({ op: 'forward', port });
        return (ws) => bridgeBytes(ws, stream);
      },
    },
  ];
}

/** A terminal dimension from the query: 1-1000, `fallback` when absent. */
function size(url: URL, name: string, fallback: number): number {
  const value = Number(url.searchParams.get(name) ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > 1000) throw new PeerError('ERR_BAD_REQUEST', `${name} must be 1-1000`);
  return value;
}

import { parseAddrs, type Mesh } from '../../../gossip/index.ts';
import { parseProxyColumn } from '../../../proxy/index.ts';
import type { Drain } from '../../drain.ts';
import { fromPeer, toTarget, type PeerClient } from '../../placement/index.ts';
import type { SpriteManager } from '../../sprites.ts';
import { PeerError } from '../../errors.ts';
import { sendJson } from '../http.ts';
import { snakeKeys } from '../snake.ts';
import type { Route } from '../router.ts';
import type { EdgeView } from './sprites.ts';

/** What the peer routes work on. */
export interface PeerRoutesInit {
  /** The members and their gossiped rows, this peer's id, the store's health. */
  mesh: Pick<Mesh, 'peerId' | 'members' | 'health'>;
  drain: Pick<Drain, 'start' | 'state'>;
  /** Hands a drain for another peer to it. */
  peers: Pick<PeerClient, 'forward'>;
  sprites: Pick<SpriteManager, 'poolStatus'>;
  edge: EdgeView;
}

/** Routes of the peer and its mesh: members, drain, mesh health, the warm pool, the proxy's CA. */
export function peerRoutes({ mesh, drain, peers, sprites, edge }: PeerRoutesInit): Route[] {
  return [
    { method: 'GET', pattern: /^\/v1\/pool$/, auth: 'admin', handler: ({ res }) => sendJson(res, 200, snakeKeys(sprites.poolStatus())) },
    {
      method: 'GET',
      pattern: /^\/v1\/peers$/,
      // The mesh's layout (addresses, load, versions) and the pool are the operator's to see.
      auth: 'admin',
      handler: ({ res }) => {
        const peers = mesh.members().map(({ id, state, self, row }) => ({
          id, state, self, api: row.api, proxy: parseProxyColumn(row.proxy) ?? null, addrs: parseAddrs(row.addrs), pool_target: row.pool_target, pool_ready: row.pool_ready,
          capacity: row.capacity, load: row.load, drain: row.drain, version: row.version, heartbeat: new Date(row.heartbeat).toISOString(),
        }));
        sendJson(res, 200, { peers });
      },
    },
    {
      method: 'POST',
      pattern: /^\/v1\/peers\/(?<peer>[^/]+)\/drain$/,
      // Draining stops creates and moves every org's sprites: an operator's call.
      auth: 'admin',
      handler: async ({ req, res, params }) => {
        if (params.peer !== 'self' && params.peer !== mesh.peerId && !fromPeer(req)) {
          const peer = mesh.members().find((m) => m.id === params.peer);
          if (!peer) throw new PeerError('ERR_NOT_FOUND', `no peer ${params.peer} in the mesh`);
          if (peer.state !== 'alive') throw new PeerError('ERR_OWNER_UNREACHABLE', `peer ${peer.id} is ${peer.state}`);
          return peers.forward(toTarget(peer), req, res);
        }
        void drain.start();
        sendJson(res, 202, { peer: mesh.peerId, drain: drain.state });
      },
    },
    { method: 'GET', pattern: /^\/v1\/mesh\/health$/, auth: 'admin', handler: ({ res }) => sendJson(res, 200, snakeKeys(mesh.health())) },
    {
      method: 'GET',
      pattern: /^\/v1\/proxy\/ca$/,
      // What a client trusts to open sprite URLs over HTTPS: any token.
      auth: 'token',
      handler: ({ res }) => {
        const domain = edge.address()?.domain;
        const ca = edge.ca();
        if (!ca) throw new PeerError('ERR_PROXY_NO_CA', 'this peer serves a certificate from files (or has no HTTPS listener): there is no mesh CA');
        sendJson(res, 200, { domain, ca });
      },
    },
  ];
}

import type { Mesh } from '../../../gossip/index.ts';
import type { Drain } from '../../drain.ts';
import type { ImageManager } from '../../images.ts';
import type { CreateFlow, PeerClient } from '../../placement/index.ts';
import type { SpriteRegistry } from '../../records/index.ts';
import type { SpriteManager } from '../../sprites.ts';
import type { OrgQuotas } from '../../quotas.ts';
import { checkRules, type Route, type WsRoute } from '../router.ts';
import { checkpointRoutes } from './checkpoints.ts';
import { execRoutes } from './exec.ts';
import { fsRoutes } from './fs.ts';
import { fsWatchRoutes } from './fs-watch.ts';
import { imageRoutes } from './images.ts';
import { peerRoutes } from './peers.ts';
import { policyRoutes } from './policies.ts';
import { serviceRoutes } from './services.ts';
import { sessionRoutes } from './sessions.ts';
import { spriteRoutes, type EdgeView } from './sprites.ts';
import { tenantRoutes } from './tenants.ts';

/** What the routes work on; each resource's list takes only the parts it uses. */
export interface RouteParts {
  sprites: SpriteManager;
  mesh: Mesh;
  registry: SpriteRegistry;
  edge: EdgeView;
  drain: Drain;
  peers: PeerClient;
  creates: CreateFlow;
  images: ImageManager;
  quotas: OrgQuotas;
}

/** The API's one route table (docs/API.md and the authz matrix test are held to it), plain and WebSocket routes apart. */
export function routeTable(parts: RouteParts): { routes: Route[]; wsRoutes: WsRoute[] } {
  const { sprites, mesh, registry, edge, drain, peers, creates, images, quotas } = parts;
  const table = {
    routes: [
      ...spriteRoutes({ sprites, mesh, registry, edge, creates, quotas }),
      ...checkpointRoutes(sprites),
      ...sessionRoutes(sprites),
      ...serviceRoutes(sprites),
      ...policyRoutes(sprites),
      ...peerRoutes({ mesh, drain, peers, sprites, edge }),
      ...tenantRoutes(mesh, quotas),
      ...imageRoutes(images),
      ...fsRoutes(sprites),
    ],
    wsRoutes: [...execRoutes(sprites), ...fsWatchRoutes(sprites)],
  };
  // Each route's rule is declared with it (router.ts `Auth`) and enforced by the server.
  checkRules([...table.routes, ...table.wsRoutes]);
  return table;
}

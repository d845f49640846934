/**
 * Placement: where things happen in the mesh (placement.ts), the create protocol that asks the
 * name's arbiter and places the sprite (create.ts), and the typed client of requests between
 * peers (peer-client.ts) over one wire format (hops.ts).
 */
export { Placement, toTarget } from './placement.ts';
export type { PeerTarget, PlacementComponents, PlacementMember, PlacementMesh, PlacementSprites } from './placement.ts';
export { CreateFlow } from './create.ts';
export type { CreateComponents, CreateSpec, CreateSprites } from './create.ts';
export { PeerClient } from './peer-client.ts';
export type { PeerCall, PeerClientInit } from './peer-client.ts';
export { fromPeer, HopKeys, readHop } from './hops.ts';
export type { Hop, HopRole } from './hops.ts';
export { requestPath } from './relay.ts';

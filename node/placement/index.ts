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
export type { PeerCall } from './peer-client.ts';
export { fromPeer } from './hops.ts';

/**
 * The peer's replicated records: the domain tables of the mesh store and their typed access. No
 * other module reads or writes these tables; gossip/ only replicates them.
 */
export { RECORD_TABLES } from './tables.ts';
export type { RecordStore } from './store.ts';
export { SpriteRecords } from './sprites.ts';
export type { NewSpriteRecord, SpriteRecord, SpriteRegistry, SpriteState, SpriteUpdate } from './sprites.ts';
export { callerOf, callerOfHash, createToken, listTokens, registerPeerToken, revokeToken, tokenCheck, tokenHash } from './tokens.ts';
export type { Caller } from './tokens.ts';
export { createOrg, ensureAdminOrg, listOrgs, requireOrg } from './orgs.ts';
export { ImageRecords } from './images.ts';
export { SpriteDocs, type DocKind } from './sprite-docs.ts';
export type { ImageInfo } from './images.ts';
export { edgeCerts, edgeRoutes } from './edge.ts';
export type { EdgeMesh, EdgeRoutes } from './edge.ts';
export { QUOTA_KINDS, orgQuotas, orgUsage, parseUsage, setOrgQuotas } from './quotas.ts';
export type { QuotaKind, QuotaLimits, QuotaUsage, SpriteUsage } from './quotas.ts';

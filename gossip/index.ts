/** Public surface of gossip/: the replicated CRDT store and the mesh that gossips it between peers. */
export { defineTable, SENTINEL, withRules } from './store/schema.ts';
export type { ColumnInfo, ColumnOptions, ColumnSpec, ColumnType, KeyOf, RowInput, RowOf, TableDef, ValueCheck, ValueOf } from './store/schema.ts';
export { openStore } from './store/store.ts';
export { STORE_DEFAULTS } from './store/api.ts';
export type { ChangeListener, CrdtStore, StoreDump, StoreInit, StoreLimits, StoreLogger, StoreTx } from './store/api.ts';
export type { ApplyResult, Change, ChangeEvent, Changeset, Heads, Rejection, StoreHealth, VersionRanges } from './store/types.ts';
export { schemaIndex, validateChangeset, isSiteId, VALIDATION_DEFAULTS } from './store/validate.ts';
export type { SchemaIndex, Validation, ValidationLimits } from './store/validate.ts';
export { CODEC_DEFAULTS, decodeChangesets, encodeChangesets, WIRE_VERSION } from './store/codec.ts';
export type { CodecLimits } from './store/codec.ts';
export { chunkChangeset } from './store/serve.ts';
export type { ChunkLimits } from './store/serve.ts';
export { materialize } from './store/materialize.ts';
export type { MaterializedView } from './store/materialize.ts';
export { compareValues } from './store/values.ts';
export type { SqlValue } from './store/values.ts';
export { hlcMillis } from './store/hlc.ts';
export { STORE_ERROR_CODES, StoreError } from './store/errors.ts';
export type { RejectCode, StoreErrorCode } from './store/errors.ts';

/** The mesh: libp2p host, broadcast, anti-entropy, membership and connectivity on the store. */
export { Mesh } from './mesh.ts';
export type { Member, MeshHealth, MeshInit, MeshLogger } from './mesh.ts';
/** The membership's table of peers; every other table belongs to the caller. */
export { parseAddrs, PEER_RULES, peersTable } from './peers.ts';
/** Content rules for values from other peers. */
export { dnsName, isMultiaddr, isoTime, jsonText, numberIn, oneOf, originUrl, peerIdText, printable, textMatching } from './rules.ts';
export type { PeerRow, SelfDescription } from './peers.ts';
export { MESH_DEFAULTS } from './defaults.ts';
export type { MemberEvent, MemberState } from './membership.ts';

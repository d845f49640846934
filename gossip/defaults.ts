// The mesh's defaults in one object, in a file with no imports: node/options.ts reads them for the
// peer's flags and help without loading libp2p and the store (which gossip/index.ts would).

/** Defaults of {@link MeshInit}'s timings and fan-out (each field's doc says what it is). */
export const MESH_DEFAULTS = {
  /** Time between this peer's heartbeat writes (a peer lowers it to a third of its suspect time). */
  heartbeatMs: 5000,
  /** Mean time between background anti-entropy rounds with a random peer (jittered ±50 %). */
  syncIntervalMs: 3000,
  /** Connections to keep to random live peers. */
  connections: 6,
  /** Timeouts of the failure detector. */
  membership: {
    /** No heartbeat seen for this long: suspect (and try a ping). */
    suspectAfterMs: 15_000,
    /** No heartbeat or successful ping for this long: down. */
    downAfterMs: 30_000,
  },
} as const;

import { peerIdFromString } from '@libp2p/peer-id';
import { join } from 'node:path';
import { Broadcast, type BroadcastStats } from './broadcast.ts';
import { Connectivity, type Candidate } from './connectivity.ts';
import { MESH_DEFAULTS } from './defaults.ts';
import { createHost, type Host } from './host.ts';
import { loadOrCreatePeerKey, loadSwarmKey } from './identity.ts';
import { Membership, type MemberEvent, type MemberState, type MembershipInit } from './membership.ts';
import type { CrdtStore, StoreTx } from './store/api.ts';
import { withRules, type TableDef, type ValueCheck } from './store/schema.ts';
import { openStore } from './store/store.ts';
import type { Changeset, StoreHealth, Heads, VersionRanges } from './store/types.ts';
import { encodeCommit, storeReplica } from './store-replica.ts';
import { Sync, type SyncStats } from './sync.ts';
import { parseAddrs, PEER_RULES, peersTable, type PeerRow, type SelfDescription } from './peers.ts';

/** The logging the mesh does. */
export interface MeshLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/** How to join a mesh. */
export interface MeshInit {
  /** Holds `peer.key`, `mesh.db` and (unless `swarmKeyFile` is given) `swarm.key`. */
  dataDir: string;
  /** Multiaddrs to listen on. */
  listen: string[];
  /** Multiaddrs of peers to join through (one live one is enough). */
  bootstrap: string[];
  /** The caller's replicated tables; the mesh adds its own `peers` table. */
  tables: readonly TableDef[];
  /** Content rules for the caller's columns of the `peers` table (its `proxy`), over the mesh's own (`PEER_RULES`). */
  peerRules?: Readonly<Record<string, ValueCheck>>;
  /** Swarm key of an existing mesh; without it the key in the data dir is used or created. */
  swarmKeyFile?: string;
  /** Time between this peer's heartbeat writes. @default MESH_DEFAULTS.heartbeatMs (5000) */
  heartbeatMs?: number;
  membership?: MembershipInit;
  /** Mean time between background anti-entropy rounds. @default MESH_DEFAULTS.syncIntervalMs (3000) */
  syncIntervalMs?: number;
  /** Connections to keep to random live peers. @default MESH_DEFAULTS.connections (6) */
  connections?: number;
  describe: () => SelfDescription;
  logger: MeshLogger;
}

/** A member as this peer sees it. */
export interface Member {
  id: string;
  state: MemberState;
  self: boolean;
  row: PeerRow;
}

/** This peer's view of the mesh, for `/v1/mesh/health`. */
export interface MeshHealth {
  peer: string;
  addrs: string[];
  connections: number;
  members: { id: string; state: MemberState; api: string }[];
  heads: Heads;
  gaps: VersionRanges;
  sync: SyncStats;
  broadcast: BroadcastStats;
  store: StoreHealth;
  /** Messages dropped as malformed or impossible, since start. */
  rejectedMessages: number;
}

const TICK_MS = 1000;
const REJECT_LOG_EVERY_MS = 60_000;

/**
 * One peer's membership in the mesh: the replicated store, the libp2p host, broadcast of local
 * commits, anti-entropy, heartbeats, the failure detector and connectivity. `open` builds, `start`
 * runs each loop, `stop` ends them in reverse.
 */
export class Mesh {
  readonly store: CrdtStore;
  readonly host: Host;
  readonly peerId: string;
  readonly #init: MeshInit;
  readonly #broadcast: Broadcast;
  readonly #sync: Sync;
  readonly #connectivity: Connectivity;
  readonly #membership: Membership;
  readonly #heartbeats = new Map<string, number>();
  readonly #listeners = new Set<(event: MemberEvent) => void>();
  readonly #rejectLogged = new Map<string, number>();
  #rejected = 0;
  #started = false;
  #stopped = false;
  #timers: NodeJS.Timeout[] = [];
  #unsubscribe: (() => void) | undefined;

  private constructor(init: MeshInit, store: CrdtStore, host: Host) {
    this.#init = init;
    this.store = store;
    this.host = host;
    this.peerId = host.peerId.toString();
    const replica = storeReplica(store);
    this.#sync = new Sync(host, replica, { intervalMs: init.syncIntervalMs ?? MESH_DEFAULTS.syncIntervalMs });
    this.#broadcast = new Broadcast(host, replica, {
      pull: (peer) => this.#sync.pullFrom(peer),
      onReject: (from, error) => this.#reject(from, error),
    });
    this.#membership = new Membership(init.membership);
    this.#connectivity = new Connectivity(host, { target: init.connections, bootstrap: init.bootstrap, candidates: () => this.#candidates() });
  }

  /** Opens the store and keys and builds the host; nothing runs until `start`. */
  static async open(init: MeshInit): Promise<Mesh> {
    const privateKey = await loadOrCreatePeerKey(join(init.dataDir, 'peer.key'));
    const swarmKey = await loadSwarmKey(init.swarmKeyFile ?? join(init.dataDir, 'swarm.key'), init.swarmKeyFile === undefined);
    const peers = withRules(peersTable, { ...PEER_RULES, ...init.peerRules });
    const store = openStore({ path: join(init.dataDir, 'mesh.db'), tables: [peers, ...init.tables], logger: init.logger });
    try {
      return new Mesh(init, store, await createHost({ privateKey, swarmKey, listen: init.listen }));
    } catch (error) {
      store.close();
      throw error;
    }
  }

  /**
   * Starts the host and every loop, writes the first heartbeat and dials the bootstrap peers. A
   * start that fails (a listen address in use) stops what it started before it throws.
   */
  async start(): Promise<void> {
    this.#started = true;
    try {
      await this.#run();
    } catch (error) {
      await this.#halt();
      this.#started = false;
      throw error;
    }
  }

  async #run(): Promise<void> {
    this.#unsubscribe = this.store.subscribe(peersTable, (event) => {
      if (event.origin === 'remote' && event.row) this.#sawHeartbeat(event.row);
    });
    for (const row of this.store.all(peersTable)) this.#heartbeats.set(row.id, row.heartbeat);
    await this.host.start();
    this.#broadcast.start();
    await this.#sync.start();
    this.#heartbeat();
    this.#connectivity.start();
    this.#timers.push(setInterval(() => this.#heartbeat(), this.#init.heartbeatMs ?? MESH_DEFAULTS.heartbeatMs));
    this.#timers.push(setInterval(() => this.tick(), TICK_MS));
  }

  /** Stops every loop and the host (when started), and closes the store; safe to call twice. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#started) await this.#halt();
    this.store.close();
  }

  /** Ends the loops and the host; each step tolerates a part that never started. */
  async #halt(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
    this.#unsubscribe?.();
    this.#connectivity.stop();
    await this.#sync.stop();
    try {
      this.#broadcast.stop();
    } catch {
      // The pubsub service never started.
    }
    await this.host.stop();
  }

  /** Commits a local transaction and broadcasts it. Returns the changeset (undefined when nothing changed). */
  write(fn: (tx: StoreTx) => void): Changeset | undefined {
    const changeset = this.store.transact(fn);
    if (changeset) for (const batch of encodeCommit(changeset)) void this.#broadcast.publish(batch, changeset.site_id, changeset.db_version);
    return changeset;
  }

  /**
   * Publishes a change of what this peer says about itself now rather than at the next heartbeat
   * (a drain starting, the proxy's address), so other peers act on it at once.
   */
  publishSelf(fields: Partial<SelfDescription>): void {
    this.write((tx) => tx.upsert(peersTable, { ...fields, id: this.peerId }));
  }

  /** Addresses other peers can join with (`/ip4/.../tcp/.../p2p/...`). */
  addresses(): string[] {
    return this.host.getMultiaddrs().map((addr) => addr.toString());
  }

  /** Every peer with a row, with this peer's view of its state. */
  members(): Member[] {
    return this.store.all(peersTable).map((row) => {
      const self = row.id === this.peerId;
      return { id: row.id, self, state: self ? 'alive' : (this.#membership.state(row.id) ?? 'suspect'), row };
    });
  }

  /** Calls `listener` on every member state change; returns the unsubscribe. */
  onMemberChange(listener: (event: MemberEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Pulls from every connected peer now (used after a heal and by tests). */
  async syncAll(): Promise<number> {
    const results = await Promise.allSettled(this.host.getPeers().map((peer) => this.#sync.pullFrom(peer)));
    return results.reduce((sum, r) => sum + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  /** This peer's view, for health endpoints. */
  health(): MeshHealth {
    return {
      peer: this.peerId,
      addrs: this.addresses(),
      connections: this.host.getPeers().length,
      members: this.members().map((m) => ({ id: m.id, state: m.state, api: m.row.api })),
      heads: this.store.heads(),
      gaps: this.store.gaps(),
      sync: this.#sync.stats(),
      broadcast: this.#broadcast.stats(),
      store: this.store.health(),
      rejectedMessages: this.#rejected,
    };
  }

  /** One failure-detector step: re-evaluates members and pings the suspects. */
  tick(now = performance.now()): void {
    for (const event of this.#membership.tick(now)) this.#emit(event);
    for (const id of this.#membership.members('suspect')) {
      let peer;
      try {
        peer = peerIdFromString(id);
      } catch {
        continue;
      }
      void this.host.services.ping
        .ping(peer, { signal: AbortSignal.timeout(2000) })
        .then(() => {
          const event = this.#membership.observe(id, performance.now());
          if (event) this.#emit(event);
        })
        .catch(() => undefined);
    }
  }

  #heartbeat(): void {
    this.write((tx) => tx.upsert(peersTable, { ...this.#init.describe(), id: this.peerId, addrs: JSON.stringify(this.addresses()), heartbeat: Date.now() }));
  }

  #sawHeartbeat(row: PeerRow): void {
    if (row.id === this.peerId) return;
    // Only a newer heartbeat is evidence of life; an old row re-delivered by sync is not.
    if (row.heartbeat <= (this.#heartbeats.get(row.id) ?? 0)) return;
    this.#heartbeats.set(row.id, row.heartbeat);
    const event = this.#membership.observe(row.id, performance.now());
    if (event) this.#emit(event);
  }

  #candidates(): Candidate[] {
    return this.members()
      .filter((m) => !m.self)
      .map((m) => ({ id: m.id, addrs: parseAddrs(m.row.addrs), down: m.state === 'down' }));
  }

  #emit(event: MemberEvent): void {
    this.#init.logger.info('member state changed', { member: event.id, from: event.from ?? null, to: event.to });
    for (const listener of this.#listeners) listener(event);
  }

  #reject(from: string, error: Error): void {
    this.#rejected += 1;
    const now = Date.now();
    if (now - (this.#rejectLogged.get(from) ?? 0) < REJECT_LOG_EVERY_MS) return;
    this.#rejectLogged.set(from, now);
    this.#init.logger.warn('dropped a bad gossip message', { from, error: error.message });
  }
}

import { materialize, peersTable, type Member, type MemberEvent, type RowOf } from '../../gossip/index.ts';
import { forwardTarget, parseProxyColumn, type CertStore, type LinkTarget, type PeerState, type RouteSource, type SpriteRoute } from '../../proxy/index.ts';
import type { RecordStore } from './store.ts';
import { proxyCertsTable, spritesTable } from './tables.ts';

/** What the proxy's view of the records needs of the mesh: the store, this peer and the failure detector. */
export interface EdgeMesh extends RecordStore {
  readonly peerId: string;
  /** Every peer with a row, with this peer's view of its state. */
  members(): Member[];
  /** Calls `listener` on every member state change; returns the unsubscribe. */
  onMemberChange(listener: (event: MemberEvent) => void): () => void;
}

/** The proxy's route source over the records; `close` stops following the store. */
export type EdgeRoutes = RouteSource & { close(): void };

/**
 * What the edge proxy routes by: sprites and where peers' proxies listen from in-memory views kept
 * current by store events (a request costs lookups, not queries), member states from the failure
 * detector. Each changed row is converted once, on first use.
 */
export function edgeRoutes(mesh: EdgeMesh): EdgeRoutes {
  const sprites = materialize(mesh.store, spritesTable, (row) => row.name);
  const peers = materialize(mesh.store, peersTable, (row) => row.id);
  const routes = new WeakMap<RowOf<typeof spritesTable>, SpriteRoute>();
  const targets = new WeakMap<RowOf<typeof peersTable>, LinkTarget | null>();
  const states = new Map<string, PeerState>();
  for (const member of mesh.members()) states.set(member.id, member.state);
  const unfollow = mesh.onMemberChange((event) => states.set(event.id, event.to));
  return {
    peerId: mesh.peerId,
    sprite: (name) => {
      const row = sprites.map.get(name);
      if (!row) return undefined;
      let route = routes.get(row);
      if (!route) {
        route = { name: row.name, owner: row.owner, org: row.org, urlAuth: row.url_auth, state: row.state, httpPort: row.http_port, reason: row.reason };
        routes.set(row, route);
      }
      return route;
    },
    peerTarget: (peer) => {
      const row = peers.map.get(peer);
      if (!row) return undefined;
      let target = targets.get(row);
      if (target === undefined) {
        const address = parseProxyColumn(row.proxy);
        target = (address && forwardTarget(address, row.id)) ?? null;
        targets.set(row, target);
      }
      return target ?? undefined;
    },
    peerState: (peer) => states.get(peer),
    onSpriteChange: (listener) => mesh.store.subscribe(spritesTable, (event) => listener(event.pk.name, !event.row)),
    close: () => {
      sprites.close();
      peers.close();
      unfollow();
    },
  };
}

/** The mesh's certificate bundles as rows of the replicated `proxy_certs` table, one per domain. */
export function edgeCerts(mesh: RecordStore): CertStore {
  return {
    get: (domain) => mesh.store.get(proxyCertsTable, { domain })?.bundle,
    put: (domain, bundle) => mesh.write((tx) => tx.upsert(proxyCertsTable, { domain, bundle, created: new Date().toISOString() })),
    onChange: (domain, listener) => mesh.store.subscribe(proxyCertsTable, (event) => {
      if (event.pk.domain === domain) listener(event.row?.bundle);
    }),
  };
}

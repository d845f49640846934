import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { MESH_DEFAULTS } from './defaults.ts';
import type { Host } from './host.ts';

/** A peer this one could connect to. */
export interface Candidate {
  id: string;
  addrs: string[];
  /** The failure detector holds it down: dialled only as a probe, one per step. */
  down?: boolean;
}

/** Connectivity settings. */
export interface ConnectivityInit {
  /** Connections to keep to random live peers. @default MESH_DEFAULTS.connections (6) */
  target?: number;
  /** Time between checks (jittered). @default 3000 */
  intervalMs?: number;
  /** Peers learned from the replicated records. */
  candidates: () => Candidate[];
  /** Addresses to dial while no candidate is known yet. */
  bootstrap: string[];
}

/**
 * Keeps each peer connected to several random live peers, not only to its bootstrap: a mesh where
 * everyone dials one neighbour loses gossip at 30 peers; five random dials each deliver everything.
 * Each step also dials one random peer held down, so the two sides of a healed partition find
 * each other again (each holds the other down and would otherwise never dial it).
 */
export class Connectivity {
  readonly #host: Host;
  readonly #init: ConnectivityInit;
  readonly #target: number;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(host: Host, init: ConnectivityInit) {
    this.#host = host;
    this.#init = init;
    this.#target = init.target ?? MESH_DEFAULTS.connections;
  }

  /** Dials the bootstrap addresses and starts the loop. */
  start(): void {
    this.#running = true;
    void this.ensureOnce();
    this.#schedule();
  }

  /** Stops the loop (connections stay until the host stops). */
  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
  }

  /**
   * One step: when below target, dial random live candidates (or the bootstrap list) not yet
   * connected; and probe one peer held down. Resolves with the dials made.
   */
  async ensureOnce(): Promise<number> {
    const self = this.#host.peerId.toString();
    const connected = new Set(this.#host.getPeers().map((peer) => peer.toString()));
    const missing = Math.max(0, this.#target - connected.size);
    const unconnected = shuffle(this.#init.candidates().filter((c) => c.id !== self && !connected.has(c.id) && c.addrs.length > 0));
    const chosen = [...unconnected.filter((c) => !c.down).slice(0, missing), ...unconnected.filter((c) => c.down).slice(0, 1)];
    const dials: Promise<unknown>[] = [];
    for (const candidate of chosen) {
      const addrs = candidate.addrs.flatMap((addr) => {
        try {
          return [multiaddr(addr)];
        } catch {
          return [];
        }
      });
      if (addrs.length === 0) continue;
      try {
        peerIdFromString(candidate.id);
      } catch {
        continue;
      }
      dials.push(this.#host.dial(addrs, { signal: AbortSignal.timeout(5000) }));
    }
    if (connected.size === 0 && missing > 0 && dials.length === 0) {
      for (const addr of this.#init.bootstrap) dials.push(this.#host.dial(multiaddr(addr), { signal: AbortSignal.timeout(5000) }));
    }
    await Promise.allSettled(dials);
    return dials.length;
  }

  #schedule(): void {
    if (!this.#running) return;
    const interval = this.#init.intervalMs ?? 3000;
    this.#timer = setTimeout(() => {
      void this.ensureOnce().finally(() => this.#schedule());
    }, interval * (0.5 + Math.random()));
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

import type { PeerId, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { decode, encode } from 'cbor-x';
import { chunk, subtract, type Range } from './ranges.ts';
import { MESH_DEFAULTS } from './defaults.ts';
import type { Host } from './host.ts';
import type { Replica } from './replica.ts';

/** Anti-entropy settings. */
export interface SyncInit {
  /** Mean time between background syncs with a random peer (jittered ±50%). @default MESH_DEFAULTS.syncIntervalMs (3000) */
  intervalMs?: number;
  /** Versions asked for per range chunk. @default 256 */
  versionsPerChunk?: number;
  /** Give up on one exchange after this long. @default 10000 */
  timeoutMs?: number;
}

/** What `/v1/mesh/health` shows about sync. */
export interface SyncStats {
  /** Last completed pull per peer (ISO time). */
  lastSync: Record<string, string>;
  pulls: number;
  failures: number;
  versionsReceived: number;
  /** Requests from peers that broke the protocol. */
  rejected: number;
}

/** The anti-entropy protocol id. */
export const SYNC_PROTOCOL = '/sprites/sync/1.0.0';

const MAX_MESSAGE = 4 * 1024 * 1024;
const MAX_SITES = 10_000;
const MAX_RANGES_PER_SITE = 4096;
const SITE_ID = /^[0-9a-f]{32}$/;

/**
 * Pull-based anti-entropy over a libp2p stream: the puller sends what it knows (per-site version
 * ranges), the other side answers with every version it has that the puller lacks, in bounded
 * batches, then `done`. Runs on every new connection and periodically with a random peer.
 */
export class Sync {
  readonly #host: Host;
  readonly #replica: Replica;
  readonly #intervalMs: number;
  readonly #versionsPerChunk: number;
  readonly #timeoutMs: number;
  readonly #stats: SyncStats = { lastSync: {}, pulls: 0, failures: 0, versionsReceived: 0, rejected: 0 };
  readonly #pulling = new Map<string, Promise<number>>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  readonly #onConnect = (event: CustomEvent<PeerId>): void => {
    void this.pullFrom(event.detail).catch(() => undefined);
  };

  constructor(host: Host, replica: Replica, init: SyncInit = {}) {
    this.#host = host;
    this.#replica = replica;
    this.#intervalMs = init.intervalMs ?? MESH_DEFAULTS.syncIntervalMs;
    this.#versionsPerChunk = init.versionsPerChunk ?? 256;
    this.#timeoutMs = init.timeoutMs ?? 10_000;
  }

  /** Registers the protocol handler and starts the periodic loop. */
  async start(): Promise<void> {
    this.#running = true;
    await this.#host.handle(SYNC_PROTOCOL, (stream) => void this.#serve(stream), { maxInboundStreams: 8 });
    this.#host.addEventListener('peer:connect', this.#onConnect);
    this.#schedule();
  }

  /** Stops the loop and unregisters the handler. */
  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#host.removeEventListener('peer:connect', this.#onConnect);
    await this.#host.unhandle(SYNC_PROTOCOL).catch(() => undefined);
  }

  /** Counters for health. */
  stats(): SyncStats {
    return { ...this.#stats, lastSync: { ...this.#stats.lastSync } };
  }

  /** One round: pull from a random connected peer. Resolves with the versions received. */
  async syncOnce(): Promise<number> {
    const peers = this.#host.getPeers();
    const peer = peers[Math.floor(Math.random() * peers.length)];
    return peer ? this.pullFrom(peer) : 0;
  }

  /** Pulls everything `peer` has that this replica lacks. Concurrent pulls from one peer share one exchange. */
  pullFrom(peer: PeerId): Promise<number> {
    const key = peer.toString();
    const running = this.#pulling.get(key);
    if (running) return running;
    const job = this.#pull(peer).finally(() => this.#pulling.delete(key));
    this.#pulling.set(key, job);
    return job;
  }

  async #pull(peer: PeerId): Promise<number> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let received = 0;
    try {
      const stream = await this.#host.dialProtocol(peer, SYNC_PROTOCOL, { signal });
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE });
      await lp.write(encode({ known: this.#replica.known() }), { signal });
      for (;;) {
        const message = decode((await lp.read({ signal })).subarray()) as { batch?: Uint8Array; done?: boolean };
        if (message.done === true) break;
        if (!(message.batch instanceof Uint8Array)) throw new Error('sync answer without a batch');
        received += this.#replica.receive(message.batch, peer.toString()).completed;
      }
      await stream.close().catch(() => undefined);
      this.#stats.pulls += 1;
      this.#stats.versionsReceived += received;
      this.#stats.lastSync[peer.toString()] = new Date().toISOString();
      return received;
    } catch (error) {
      this.#stats.failures += 1;
      throw error;
    }
  }

  async #serve(stream: Stream): Promise<void> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE });
    try {
      const theirs = parseKnown(decode((await lp.read({ signal })).subarray()));
      const ours = this.#replica.known();
      for (const [site, ranges] of Object.entries(ours)) {
        for (const range of chunk(subtract(ranges, theirs[site] ?? []), this.#versionsPerChunk)) {
          for (const batch of this.#replica.serve(site, range)) await lp.write(encode({ batch }), { signal });
        }
      }
      await lp.write(encode({ done: true }), { signal });
      await stream.close();
    } catch (error) {
      if ((error as Error).name === 'SyncProtocolError') this.#stats.rejected += 1;
      stream.abort(error as Error);
    }
  }

  #schedule(): void {
    if (!this.#running) return;
    const delay = this.#intervalMs * (0.5 + Math.random());
    this.#timer = setTimeout(() => {
      void this.syncOnce()
        .catch(() => undefined)
        .finally(() => this.#schedule());
    }, delay);
  }
}

/** Validates a peer's `known` summary; throws SyncProtocolError. */
export function parseKnown(message: unknown): Record<string, Range[]> {
  const fail = (why: string): never => {
    const error = new Error(`bad sync request: ${why}`);
    error.name = 'SyncProtocolError';
    throw error;
  };
  const known = (message as { known?: unknown } | null)?.known;
  if (typeof known !== 'object' || known === null || Array.isArray(known)) return fail('known must be a map');
  const entries = Object.entries(known as Record<string, unknown>);
  if (entries.length > MAX_SITES) return fail('too many sites');
  const result: Record<string, Range[]> = {};
  for (const [site, ranges] of entries) {
    if (!SITE_ID.test(site)) return fail('site ids are 32 hex characters');
    if (!Array.isArray(ranges) || ranges.length > MAX_RANGES_PER_SITE) return fail('ranges must be a bounded list');
    result[site] = ranges.map((range: unknown) => {
      if (!Array.isArray(range) || range.length !== 2) return fail('a range is [from, to]');
      const [from, to] = range as unknown[];
      if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || (from as number) < 1 || (from as number) > (to as number)) {
        return fail('a range is two ordered positive integers');
      }
      return [from as number, to as number] as Range;
    });
  }
  return result;
}

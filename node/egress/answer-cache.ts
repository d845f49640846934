import type { Admission } from './answer-meaning.ts';

/** One cached upstream answer. */
interface Entry {
  bytes: Buffer;
  /** Offsets of the TTL fields to count down. */
  ttlOffsets: number[];
  storedAt: number;
  expiresAt: number;
  admission: Admission;
}

/** A cached answer ready to send, and what it admits now. */
export interface CachedReply {
  bytes: Buffer;
  admission: Admission;
}

/**
 * Allowed upstream answers by (name, type, EDNS or not), each for its TTL, at most `maxEntries`
 * (the least recently used goes first). Policy is decided before the cache is asked, so the cache
 * is shared by every sprite. A hit is a copy with the client's id and question, and TTLs reduced by
 * the time it spent here.
 */
export class AnswerCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  static key(name: string, type: number, edns: boolean): string {
    return `${name}/${type}/${edns ? 1 : 0}`;
  }

  get size(): number {
    return this.#entries.size;
  }

  store(key: string, bytes: Buffer, ttlOffsets: number[], seconds: number, admission: Admission, now = Date.now()): void {
    if (seconds <= 0 || this.#maxEntries <= 0) return;
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, { bytes, ttlOffsets, storedAt: now, expiresAt: now + seconds * 1000, admission });
  }

  /** The cached answer for `key` rewritten for `query` (whose question ends at `questionEnd`), or undefined. */
  reply(key: string, query: Uint8Array, questionEnd: number, now = Date.now()): CachedReply | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    // Most recently used moves to the end of the map's order.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    const elapsed = Math.floor((now - entry.storedAt) / 1000);
    const bytes = Buffer.from(entry.bytes);
    bytes[0] = query[0]!;
    bytes[1] = query[1]!;
    // The question as this client wrote it (same length: the same name, perhaps in other case).
    bytes.set(query.subarray(12, questionEnd), 12);
    for (const offset of entry.ttlOffsets) bytes.writeUInt32BE(Math.max(0, bytes.readUInt32BE(offset) - elapsed), offset);
    const { addresses, ttl } = entry.admission;
    return { bytes, admission: { addresses, ttl: Math.max(0, ttl - elapsed) } };
  }
}

import { alignedMemory } from '../aligned.ts';

/** Bytes of page-aligned READ reply slots (the loop device reads 512 KiB or 1 MiB at a time). */
const REPLY_SLOT_BYTES = 16 * 1024 * 1024;
/** Smaller READ replies are cheap to allocate from Node's pool. */
const POOLED_READ = 64 * 1024;

/**
 * Buffers of READ replies. Large ones are slots carved from one page-aligned arena on first use:
 * a reply is written synchronously, so its slot is free again right after it (allocating 512 KiB
 * per READ kept the GC and page faults busy), and the alignment lets the cache read with O_DIRECT.
 */
export class ReplySlots {
  /** Bytes of one slot: the largest READ the kernel sends (the negotiated max_write). */
  readonly #slotSize: number;
  #arena: SharedArrayBuffer | undefined;
  readonly #free: Buffer[] = [];

  constructor(slotSize: number) {
    this.#slotSize = slotSize;
  }

  /** A buffer of `length` bytes: a free slot for a large reply, else (or when all are out) a fresh one. */
  take(length: number): Buffer {
    return (length >= POOLED_READ ? this.#slot(length) : undefined) ?? Buffer.allocUnsafe(length);
  }

  /** Gives back a buffer from {@link take} once its reply is written or failed; a fresh one is left to the GC. */
  release(buffer: Buffer): void {
    if (this.#arena && buffer.buffer === this.#arena) {
      this.#free.push(Buffer.from(this.#arena, buffer.byteOffset, this.#slotSize));
    }
  }

  /** A free slot holding `length` bytes, or undefined when all are in use. */
  #slot(length: number): Buffer | undefined {
    if (!this.#arena) {
      this.#arena = alignedMemory(REPLY_SLOT_BYTES);
      for (let at = 0; at + this.#slotSize <= REPLY_SLOT_BYTES; at += this.#slotSize) this.#free.push(Buffer.from(this.#arena, at, this.#slotSize));
    }
    return length <= this.#slotSize ? this.#free.pop()?.subarray(0, length) : undefined;
  }
}

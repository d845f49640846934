/**
 * Page-aligned memory for O_DIRECT I/O. Node has no aligned allocator, but a WebAssembly memory
 * is mapped page by page, so its buffer starts on a page boundary; a shared one is a
 * SharedArrayBuffer that the FUSE reader threads and the main thread both see without a copy.
 */

/** The page size O_DIRECT buffers, offsets and lengths are aligned to here. */
export const PAGE = 4096;

const aligned = new WeakSet<object>();

/** A zero-filled SharedArrayBuffer of at least `bytes` bytes that starts on a page boundary. */
export function alignedMemory(bytes: number): SharedArrayBuffer {
  const pages = Math.ceil(bytes / 65_536);
  const buffer = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer as unknown as SharedArrayBuffer;
  aligned.add(buffer);
  return buffer;
}

/** True when `data` lies in aligned memory and starts on a page boundary. */
function isPageAligned(data: Buffer): boolean {
  return data.byteOffset % PAGE === 0 && aligned.has(data.buffer);
}

/** True when O_DIRECT I/O of `data` at file offset `position` meets its alignment rules. */
export function directIoFits(data: Buffer, position: number): boolean {
  return position % PAGE === 0 && data.length % PAGE === 0 && isPageAligned(data);
}

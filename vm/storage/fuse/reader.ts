import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { PAGE, alignedMemory } from '../aligned.ts';

/**
 * The source of one reader thread, as plain JavaScript run with `eval: true`. A reader only does
 * blocking read(2) calls on /dev/fuse, which would otherwise pin a libuv threadpool thread each,
 * and hands every request to the main thread. It is a string rather than a .ts module because a
 * worker that loads a .ts file pays for Node's type stripper in its own isolate (about 23 MiB
 * against 10 MiB measured on this machine class), and the reader has no types worth checking.
 *
 * Buffers: the reader reads into slots of a page-aligned shared memory (see aligned.ts), placed
 * so that a WRITE's payload (after the 40-byte header and the 40-byte write_in) starts on a page
 * boundary: the device can write it to disk with O_DIRECT, without the page-cache copy. Requests
 * up to `copyLimit` bytes are copied into an exact-size ArrayBuffer and the slot is reused at
 * once; larger ones (WRITE payloads) hand the slot itself to the main thread, which gives its
 * number back on `returns` once the request is answered. With every slot out, the reader falls
 * back to a plain buffer that it transfers.
 */
const READER_SOURCE = `
const { workerData, parentPort, receiveMessageOnPort } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { fd, size, copyLimit, returns, shared, slots, stride, pad } = workerData;
const free = [];
for (let i = slots - 1; i >= 0; i--) free.push(i);
let slot = free.pop();
let buf = new Uint8Array(shared, slot * stride + pad, size);
for (;;) {
  let n;
  try {
    n = readSync(fd, buf, 0, size, null);
  } catch (error) {
    // ENOENT: the request was interrupted before we got it; EINTR/EAGAIN: try again.
    if (error.code === 'ENOENT' || error.code === 'EINTR' || error.code === 'EAGAIN') continue;
    parentPort.postMessage({ end: error.code || String(error) });
    break;
  }
  if (n <= copyLimit) {
    const copy = new Uint8Array(n);
    copy.set(buf.subarray(0, n));
    parentPort.postMessage({ buf: copy.buffer, n }, [copy.buffer]);
    continue;
  }
  if (slot >= 0) parentPort.postMessage({ slot, n });
  else parentPort.postMessage({ buf: buf.buffer, n }, [buf.buffer]);
  for (let m; (m = receiveMessageOnPort(returns)); ) free.push(m.message);
  slot = free.length > 0 ? free.pop() : -1;
  buf = slot >= 0 ? new Uint8Array(shared, slot * stride + pad, size) : new Uint8Array(size);
}
`;

/**
 * Slots per reader. The loop device keeps several 1 MiB WRITEs in flight; with fewer slots than
 * that, reads fall back to fresh buffers (zero-filled, page-faulted, collected, unaligned).
 */
const SLOTS = 8;
/** Bytes of a FUSE request before a WRITE's payload: fuse_in_header + fuse_write_in. */
const WRITE_PAYLOAD_OFFSET = 80;

/**
 * What a reader thread reports: a request in one of its slots, a request in a buffer of its
 * own, or the end of the session.
 */
export type ReaderMessage =
  | { slot: number; n: number; buf?: undefined; end?: undefined }
  | { buf: ArrayBuffer; n: number; slot?: undefined; end?: undefined }
  | { end: string };

/** One reader thread, its slots and the port on which slots go back to it. */
export interface Reader {
  readonly worker: Worker;
  /** The request of `n` bytes in slot `slot`, without a copy. */
  view(slot: number, n: number): Buffer;
  /** Gives a slot back to the reader for reuse. */
  giveBack(slot: number): void;
  /** Resolves when the thread has exited. */
  readonly exited: Promise<void>;
}

/** Starts a reader thread doing blocking reads of `fd` into buffers of `size` bytes. */
export function startReader(fd: number, size: number, onMessage: (message: ReaderMessage) => void): Reader {
  const channel = new MessageChannel();
  const pad = PAGE - WRITE_PAYLOAD_OFFSET;
  const stride = Math.ceil((pad + size) / PAGE) * PAGE;
  const shared = alignedMemory(SLOTS * stride);
  const worker = new Worker(READER_SOURCE, {
    eval: true,
    workerData: { fd, size, copyLimit: 64 * 1024, returns: channel.port2, shared, slots: SLOTS, stride, pad },
    transferList: [channel.port2 as unknown as MessagePort],
    // The reader's buffers live outside its heap (shared slots); it needs little heap.
    resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 },
    stdout: false,
    stderr: false,
  });
  worker.on('message', onMessage);
  const exited = new Promise<void>((resolve) => worker.once('exit', () => {
    channel.port1.close();
    resolve();
  }));
  worker.on('error', (error) => onMessage({ end: `reader failed: ${String(error)}` }));
  return {
    worker,
    exited,
    view: (slot, n) => Buffer.from(shared, slot * stride + pad, n),
    giveBack: (slot) => channel.port1.postMessage(slot),
  };
}

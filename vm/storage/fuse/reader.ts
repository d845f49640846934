import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';

/**
 * The source of one reader thread, as plain JavaScript run with `eval: true`. A reader only does
 * blocking read(2) calls on /dev/fuse, which would otherwise pin a libuv threadpool thread each,
 * and hands every request to the main thread. It is a string rather than a .ts module because a
 * worker that loads a .ts file pays for Node's type stripper in its own isolate (about 23 MiB
 * against 10 MiB measured on this machine class), and the reader has no types worth checking.
 *
 * Buffers: requests up to `copyLimit` bytes are copied into an exact-size ArrayBuffer; larger ones
 * (WRITE payloads) move the whole read buffer to the main thread, which gives it back on
 * `returns` when the request is answered.
 */
const READER_SOURCE = `
const { workerData, parentPort, receiveMessageOnPort } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { fd, size, copyLimit, spareLimit, returns } = workerData;
const spare = [];
let buf = new Uint8Array(size);
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
    parentPort.postMessage({ buf: copy.buffer, n, big: false }, [copy.buffer]);
    continue;
  }
  parentPort.postMessage({ buf: buf.buffer, n, big: true }, [buf.buffer]);
  for (let m; (m = receiveMessageOnPort(returns)); ) if (spare.length < spareLimit) spare.push(m.message);
  buf = spare.length > 0 ? new Uint8Array(spare.pop()) : new Uint8Array(size);
}
`;

/**
 * Big buffers a reader keeps for reuse. The loop device keeps several 1 MiB WRITEs in flight; with
 * fewer spares than that, every read(2) met a fresh buffer (zero-filled, page-faulted, collected).
 */
const SPARE_BUFFERS = 8;

/** What a reader thread reports. */
export type ReaderMessage = { buf: ArrayBuffer; n: number; big: boolean; end?: undefined } | { end: string };

/** One reader thread and the port on which big buffers go back to it. */
export interface Reader {
  readonly worker: Worker;
  /** Gives a big request buffer back to the reader for reuse. */
  giveBack(buffer: ArrayBuffer): void;
  /** Resolves when the thread has exited. */
  readonly exited: Promise<void>;
}

/** Starts a reader thread doing blocking reads of `fd` into buffers of `size` bytes. */
export function startReader(fd: number, size: number, onMessage: (message: ReaderMessage) => void): Reader {
  const channel = new MessageChannel();
  const worker = new Worker(READER_SOURCE, {
    eval: true,
    workerData: { fd, size, copyLimit: 64 * 1024, spareLimit: SPARE_BUFFERS, returns: channel.port2 },
    transferList: [channel.port2 as unknown as MessagePort],
    // The reader holds one request buffer and a few spares; it needs little heap.
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
    giveBack: (buffer) => channel.port1.postMessage(buffer, [buffer]),
  };
}

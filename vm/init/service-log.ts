import { open, stat } from 'node:fs/promises';

/** One line of a service's NDJSON event stream, as Sprites' SDKs read it (`ServiceLogEvent`). */
export interface ServiceLogEvent {
  type: 'stdout' | 'stderr' | 'exit' | 'error' | 'complete' | 'started' | 'stopping' | 'stopped';
  /** Output (a line with its newline), or a message. */
  data?: string;
  exit_code?: number;
  /** Milliseconds since the epoch. */
  timestamp: number;
  /** Where the output is kept inside the sprite (on `complete`). */
  log_files?: Record<string, string>;
}

/** The recent output kept per service: enough for `logs?lines=N` without reading the file. */
const MAX_LINES = 1000;
const MAX_BYTES = 128 * 1024;
/** A longer line is cut into pieces of this size, so one event stays small. */
const MAX_LINE = 8 * 1024;
/** How much of the log file seeds the ring of a service after sprite-init starts. */
const SEED_BYTES = 32 * 1024;

/**
 * A service's recent output lines (a bounded ring) and the listeners of its live events. Lives by
 * service name, so it outlasts a replaced definition and its process.
 */
export class ServiceLog {
  readonly #lines: ServiceLogEvent[] = [];
  readonly #listeners = new Set<(event: ServiceLogEvent) => void>();
  #bytes = 0;

  /** Records an event: output lines go to the ring; every event goes to the listeners. */
  push(event: ServiceLogEvent): void {
    if (event.type === 'stdout' || event.type === 'stderr') {
      this.#lines.push(event);
      this.#bytes += event.data?.length ?? 0;
      while (this.#lines.length > MAX_LINES || this.#bytes > MAX_BYTES) this.#bytes -= this.#lines.shift()?.data?.length ?? 0;
    }
    for (const listener of this.#listeners) listener(event);
  }

  /** The last `lines` output lines, oldest first. */
  tail(lines: number): ServiceLogEvent[] {
    return lines <= 0 ? [] : this.#lines.slice(-lines);
  }

  /** Calls `listener` with every later event; returns the unsubscribe. */
  subscribe(listener: (event: ServiceLogEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Fills the ring from the end of a log file written before this sprite-init started (a cold wake,
   * a takeover): the lines are old output whose stream is no longer known, so they count as stdout.
   */
  async seed(path: string): Promise<void> {
    const file = await open(path, 'r').catch(() => undefined);
    if (!file) return;
    try {
      const { size, mtimeMs } = await stat(path);
      const start = Math.max(0, size - SEED_BYTES);
      const buffer = Buffer.alloc(size - start);
      await file.read(buffer, 0, buffer.length, start);
      const lines = buffer.toString('utf8').split(/(?<=\n)/);
      if (start > 0) lines.shift();
      const seeded = lines.filter((line) => line.length > 0).flatMap(pieces).map((data): ServiceLogEvent => ({ type: 'stdout', data, timestamp: Math.floor(mtimeMs) }));
      this.#lines.unshift(...seeded);
      for (const event of seeded) this.#bytes += event.data!.length;
      while (this.#lines.length > MAX_LINES || this.#bytes > MAX_BYTES) this.#bytes -= this.#lines.shift()?.data?.length ?? 0;
    } finally {
      await file.close();
    }
  }
}

/** Splits a stream's chunks into lines (pieces of at most MAX_LINE); `end` flushes a last line without newline. */
export function lineSplitter(onLine: (line: string) => void): { write(chunk: Buffer): void; end(): void } {
  let partial = '';
  return {
    write(chunk) {
      partial += chunk.toString('utf8');
      let newline: number;
      while ((newline = partial.indexOf('\n')) >= 0) {
        for (const piece of pieces(partial.slice(0, newline + 1))) onLine(piece);
        partial = partial.slice(newline + 1);
      }
      while (partial.length >= MAX_LINE) {
        onLine(partial.slice(0, MAX_LINE));
        partial = partial.slice(MAX_LINE);
      }
    },
    end() {
      if (partial.length > 0) onLine(partial);
      partial = '';
    },
  };
}

function pieces(line: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < line.length; i += MAX_LINE) out.push(line.slice(i, i + MAX_LINE));
  return out;
}

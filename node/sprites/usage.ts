import { canCheckpoint, type Logger, type VolumeStore } from '../../vm/index.ts';
import { parseUsage, type SpriteDocs } from '../records/index.ts';
import type { Machines } from './machines.ts';

/** How often the owner measures its sprites again: writes inside a running sprite grow its disk between checkpoints. */
export const USAGE_EVERY_MS = 60_000;

/** What the usage meter needs. */
export interface UsageInit {
  machines: Pick<Machines, 'owned' | 'ownedRecords'>;
  volumes: Pick<VolumeStore, 'open'>;
  docs: SpriteDocs;
  logger: Logger;
}

/**
 * Measures what each sprite this peer owns holds in the object store (its checkpoints, the bytes
 * only its disk references) and keeps it in the sprite's replicated `usage` document, where every
 * peer's quota checks read it. The owner measures after a checkpoint, a delete or restore of one,
 * a create, a stop or cold sleep, and every minute.
 */
export class UsageMeter {
  readonly #init: UsageInit;
  #timer: NodeJS.Timeout | undefined;
  #sweeping = false;

  constructor(init: UsageInit) {
    this.#init = init;
  }

  /** Measures one sprite and records it when it changed; a failure is logged, not thrown (the next measure catches up). */
  async measure(name: string): Promise<void> {
    const { machines, volumes, docs, logger } = this.#init;
    try {
      const { id } = machines.owned(name);
      const volume = volumes.open(id);
      if (!canCheckpoint(volume) || !volume.usage) return;
      const { checkpoints, bytes } = await volume.usage();
      // Destroyed (or handed off) meanwhile: its documents are gone, and stay gone.
      if (machines.owned(name).id !== id) return;
      const known = docs.read(id, 'usage', parseUsage);
      if (known?.checkpoints === checkpoints && known.stored_bytes === bytes) return;
      docs.write(id, 'usage', { checkpoints, stored_bytes: bytes });
    } catch (error) {
      logger.warn('usage measure failed', { sprite: name, error: (error as Error).message });
    }
  }

  /** Measures every owned sprite every `everyMs`, one at a time. */
  start(everyMs = USAGE_EVERY_MS): void {
    this.#timer = setInterval(() => void this.#sweep(), everyMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async #sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      for (const record of this.#init.machines.ownedRecords()) await this.measure(record.name);
    } finally {
      this.#sweeping = false;
    }
  }
}

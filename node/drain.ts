import type { Logger } from '../vm/index.ts';
import type { PeerClient, Placement } from './placement/index.ts';
import type { SpriteManager } from './sprites.ts';

/** Drain progress as gossiped in the peer's row. */
export type DrainState = 'draining' | 'drained' | null;

/** What draining uses of the sprite manager. */
export type DrainSprites = Pick<SpriteManager, 'close' | 'ownedNames' | 'handOff'>;

/** What draining needs from the peer. */
export interface DrainInit {
  sprites: DrainSprites;
  /** Where each sprite goes. */
  placement: Pick<Placement, 'handOffTarget'>;
  /** How the adopting peer is asked (over the peer link: no token). */
  peers: Pick<PeerClient, 'adopt'>;
  /** Publishes a new state in this peer's row at once. */
  publish: (state: DrainState) => void;
  logger: Logger;
  /**
   * Pause before another round when some sprite found no peer to take it or failed to move.
   * @default 2000
   */
  retryMs?: number;
}

/** Defaults of the optional {@link DrainInit} fields. */
const DEFAULTS = { retryMs: 2000 };

/**
 * `sprite peer drain`: the peer stops taking creates, empties its pool, and moves each of its
 * sprites to the least loaded other peer (a cold move: flush, give the lease up, the other peer
 * claims the record with the next epoch and restores the disk from the store).
 */
export class Drain {
  readonly #init: DrainInit;
  #state: DrainState = null;
  #run: Promise<void> | undefined;
  #stopped = false;

  constructor(init: DrainInit) {
    this.#init = init;
  }

  /** Where the drain is now: null before `start`, then 'draining', then 'drained'. */
  get state(): DrainState {
    return this.#state;
  }

  /** Starts draining (a second call joins the first); resolves once every sprite has moved. */
  start(): Promise<void> {
    this.#run ??= this.#drain().catch((error: unknown) => {
      this.#init.logger.error('drain failed', { error: (error as Error).message });
    });
    return this.#run;
  }

  /** Ends the retry loop (peer shutdown). */
  stop(): void {
    this.#stopped = true;
  }

  async #drain(): Promise<void> {
    const { sprites, placement, logger } = this.#init;
    this.#set('draining');
    await sprites.close();
    for (;;) {
      const names = sprites.ownedNames();
      if (names.length === 0 || this.#stopped) break;
      let stuck = 0;
      for (const name of names) {
        const target = placement.handOffTarget();
        if (!target) {
          stuck += 1;
          continue;
        }
        const started = performance.now();
        try {
          await sprites.handOff(name, (start) => this.#init.peers.adopt(target, name, start));
          logger.info('sprite moved', { sprite: name, to: target.peer, ms: Math.round(performance.now() - started) });
        } catch (error) {
          stuck += 1;
          logger.warn('moving a sprite failed; will retry', { sprite: name, to: target.peer, error: (error as Error).message });
        }
      }
      if (stuck > 0) await new Promise((resolve) => setTimeout(resolve, this.#init.retryMs ?? DEFAULTS.retryMs));
    }
    if (!this.#stopped) this.#set('drained');
  }

  #set(state: DrainState): void {
    this.#state = state;
    this.#init.publish(state);
  }
}

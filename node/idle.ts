import type { SpriteActivity } from '../proxy/index.ts';
import type { Logger } from '../vm/index.ts';
import type { SleepCandidate } from './sprites.ts';

/** When sprites sleep. */
export interface IdleInit {
  /** Idle this long: warm sleep (frozen). */
  warmAfterMs: number;
  /** Idle this long: cold sleep (stopped, disk unmounted). */
  coldAfterMs: number;
}

/** What the idle timer puts to sleep: the sprite manager. */
export interface SleepTarget {
  /** Local sprites awake or in warm sleep. */
  sleepCandidates(): SleepCandidate[];
  /** Freezes the sprite if `idle()` still holds when it gets to it; true when it sleeps. */
  freeze(name: string, idle: () => boolean): Promise<boolean>;
  /** Stops a sprite in warm sleep; true when it did. */
  sleepCold(name: string): Promise<boolean>;
}

/** What the idle timer is built from. */
export interface IdleComponents {
  target: SleepTarget;
  /** The edge proxy's view of a sprite: requests, open requests and WebSockets. */
  proxyActivity: (name: string) => SpriteActivity | undefined;
  logger: Logger;
  now?: () => number;
}

/**
 * The idle timer: a sprite with no proxied request or open connection, no API use that reaches it
 * and no exec, console, attach or port-forward stream for `warmAfterMs` is frozen (warm sleep);
 * after `coldAfterMs` it is stopped (cold sleep). Services alone do not count. API use is recorded
 * here (`open`); proxy use is read from the proxy's own counters.
 */
export class IdleTimer {
  readonly #init: IdleInit;
  /** Time between checks: a quarter of the warm time, 50 ms to 1 s. */
  readonly #intervalMs: number;
  readonly #components: IdleComponents;
  readonly #now: () => number;
  /** Last API use per sprite (wall-clock ms). */
  readonly #lastUse = new Map<string, number>();
  /** API calls and streams open per sprite. */
  readonly #open = new Map<string, number>();
  /** Sprites being put to sleep now: one operation each. */
  readonly #sleeping = new Set<string>();
  #timer: NodeJS.Timeout | undefined;

  constructor(init: IdleInit, components: IdleComponents) {
    this.#init = init;
    this.#intervalMs = Math.max(50, Math.min(1000, Math.floor(init.warmAfterMs / 4)));
    this.#components = components;
    this.#now = components.now ?? Date.now;
  }

  /** Records an API call or stream on `name` that lasts until the returned function is called (once). */
  open(name: string): () => void {
    this.#lastUse.set(name, this.#now());
    this.#open.set(name, (this.#open.get(name) ?? 0) + 1);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (this.#open.get(name) ?? 1) - 1;
      if (left > 0) this.#open.set(name, left);
      else this.#open.delete(name);
      this.#lastUse.set(name, this.#now());
    };
  }

  /** Starts checking periodically. */
  start(): void {
    this.#timer ??= setInterval(() => this.check(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops checking (sleeps under way finish on their own). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One pass: puts every sprite idle long enough to warm or cold sleep. */
  check(): void {
    const now = this.#now();
    for (const sprite of this.#components.target.sleepCandidates()) {
      if (this.#sleeping.has(sprite.name) || this.#busy(sprite.name)) continue;
      const last = Math.max(sprite.since, this.#lastActive(sprite.name));
      const idleFor = now - last;
      if (!sprite.frozen && idleFor >= this.#init.warmAfterMs) {
        // Still idle means: nothing used it since the decision, and nothing is open.
        this.#run(sprite.name, 'warm', () => this.#components.target.freeze(sprite.name, () => !this.#busy(sprite.name) && this.#lastActive(sprite.name) <= last));
      } else if (sprite.frozen && idleFor >= this.#init.coldAfterMs) {
        this.#run(sprite.name, 'cold', () => this.#components.target.sleepCold(sprite.name));
      }
    }
  }

  /** Drops what is known of a sprite (destroyed). */
  forget(name: string): void {
    this.#lastUse.delete(name);
  }

  #run(name: string, kind: 'warm' | 'cold', work: () => Promise<boolean>): void {
    this.#sleeping.add(name);
    work().then(
      (slept) => {
        if (slept) this.#components.logger.info(`${kind} sleep`, { sprite: name });
      },
      (error: unknown) => this.#components.logger.warn(`${kind} sleep failed`, { sprite: name, error: (error as Error).message }),
    ).finally(() => this.#sleeping.delete(name));
  }

  #busy(name: string): boolean {
    const proxy = this.#components.proxyActivity(name);
    return (this.#open.get(name) ?? 0) > 0 || (proxy !== undefined && proxy.webSockets + proxy.requests > 0);
  }

  /** Last use through the API or the proxy (0 when never). */
  #lastActive(name: string): number {
    return Math.max(this.#lastUse.get(name) ?? 0, this.#components.proxyActivity(name)?.lastActive ?? 0);
  }
}

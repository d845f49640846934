import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ProxyError } from './errors.ts';

/** Limits of waiting for sleeping sprites. */
export interface WakeInit {
  /** Longest one request waits for its sprite to wake. @default 10000 */
  waitMs?: number;
  /** Requests that may wait for one sprite; more get 503 ERR_PROXY_BUSY. @default 100 */
  perSprite?: number;
  /** Requests that may wait on this peer in all. @default 1000 */
  total?: number;
  /** After a failed wake, requests for that sprite fail at once for this long. @default 5000 */
  failureHoldMs?: number;
}

/** Default limits of waiting for sleeping sprites. */
export const WAKE_DEFAULTS = { waitMs: 10_000, perSprite: 100, total: 1000, failureHoldMs: 5000 } as const;

/** How a sprite is woken: start or thaw it, then (after a start) wait until its HTTP port answers. */
export interface WakeComponents {
  /** Starts the sprite; resolves once it runs, with 'resumed' when it was only frozen (no need to wait for its port). */
  start(name: string): Promise<void | 'resumed'>;
  /** Resolves once the sprite's HTTP port answers, or at `deadline` (ms on the `performance.now` clock). */
  ready(name: string, deadline: number): Promise<void>;
}

/** Depth of the wait queues, for health reports. */
export interface WakeStats {
  /** Sprites being woken now. */
  waking: number;
  /** Requests waiting in all. */
  waiting: number;
  /** Requests waiting per sprite. */
  bySprite: Record<string, number>;
  /** Requests turned away because a queue was full, since start. */
  rejected: number;
}

interface Wake {
  promise: Promise<void>;
  waiting: number;
}

/**
 * One shared wake per sprite and a bounded queue of requests waiting for it: at most `perSprite`
 * per sprite and `total` on the peer wait, each for at most `waitMs`. Past that, or on a failed
 * wake, requests get a 503 with Retry-After.
 */
export class Waker {
  readonly #components: WakeComponents;
  readonly #limits: Required<WakeInit>;
  readonly #wakes = new Map<string, Wake>();
  /** Recent failed wakes: the error requests get at once until `until`. */
  readonly #failures = new Map<string, { until: number; error: ProxyError }>();
  #waiting = 0;
  #rejected = 0;

  constructor(components: WakeComponents, init: WakeInit = {}) {
    this.#components = components;
    this.#limits = { ...WAKE_DEFAULTS, ...stripUndefined(init) };
  }

  /**
   * Waits until `name` is awake, starting the wake if nobody has. Throws ERR_PROXY_BUSY when a
   * queue is full, ERR_PROXY_WAKE_TIMEOUT after `waitMs`, ERR_PROXY_WAKE_FAILED when starting
   * failed, and the signal's reason when the client goes away first.
   */
  async wait(name: string, signal?: AbortSignal): Promise<void> {
    const failure = this.#failures.get(name);
    if (failure && failure.until > performance.now()) throw failure.error;
    let wake = this.#wakes.get(name);
    if (this.#waiting >= this.#limits.total || (wake?.waiting ?? 0) >= this.#limits.perSprite) {
      this.#rejected += 1;
      throw new ProxyError('ERR_PROXY_BUSY', `too many requests are waiting for sprite ${name} to wake`, { retryAfter: 2 });
    }
    if (!wake) {
      wake = { promise: this.#run(name), waiting: 0 };
      this.#wakes.set(name, wake);
    }
    wake.waiting += 1;
    this.#waiting += 1;
    try {
      await raceTimeout(wake.promise, this.#limits.waitMs, signal, () => new ProxyError('ERR_PROXY_WAKE_TIMEOUT', `sprite ${name} did not wake within ${this.#limits.waitMs / 1000} s`, { retryAfter: 5 }));
    } finally {
      wake.waiting -= 1;
      this.#waiting -= 1;
    }
  }

  /** Queue depths. */
  stats(): WakeStats {
    const bySprite: Record<string, number> = {};
    for (const [name, wake] of this.#wakes) bySprite[name] = wake.waiting;
    return { waking: this.#wakes.size, waiting: this.#waiting, bySprite, rejected: this.#rejected };
  }

  #run(name: string): Promise<void> {
    const deadline = performance.now() + this.#limits.waitMs;
    const promise = (async () => {
      if ((await this.#components.start(name)) === 'resumed') return;
      await this.#components.ready(name, deadline);
    })();
    // A start that says why it refused in the proxy's terms (a quota) keeps its answer; anything else is a failed wake.
    const failed = (error: unknown): ProxyError => error instanceof ProxyError
      ? error
      : new ProxyError('ERR_PROXY_WAKE_FAILED', `sprite ${name} could not be started: ${(error as Error)?.message ?? String(error)}`, { cause: error, retryAfter: 5 });
    promise.then(
      () => this.#wakes.delete(name),
      (error: unknown) => {
        this.#wakes.delete(name);
        this.#failures.set(name, { until: performance.now() + this.#limits.failureHoldMs, error: failed(error) });
      },
    );
    return promise.catch((error: unknown) => {
      throw failed(error);
    });
  }
}

/**
 * Resolves once something answers HTTP on the Unix socket (any response bytes to `OPTIONS *`), or
 * at `deadline`. sprite-init accepts on the socket at once and closes the connection when nothing
 * listens inside yet, so "bytes came back" is the only reliable sign of a listening service.
 */
export async function waitForHttp(socketPath: string, deadline: number, intervalMs = 20): Promise<boolean> {
  while (performance.now() < deadline) {
    if (await probe(socketPath, Math.max(1, deadline - performance.now()))) return true;
    await sleep(intervalMs);
  }
  return false;
}

function probe(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    const done = (answered: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => done(false), Math.min(timeoutMs, 1000));
    socket.once('connect', () => socket.write('OPTIONS * HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n'));
    socket.once('data', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

function raceTimeout(promise: Promise<void>, ms: number, signal: AbortSignal | undefined, timeoutError: () => Error): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(signal?.reason instanceof Error ? signal.reason : new Error('the client went away'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(timeoutError());
    }, ms);
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => {
        cleanup();
        resolve();
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

import { MESH_DEFAULTS } from './defaults.ts';

/** What this peer believes about another peer. */
export type MemberState = 'alive' | 'suspect' | 'down';

/** Timeouts of the failure detector. */
export interface MembershipInit {
  /** No heartbeat seen for this long: suspect (and try a ping). @default MESH_DEFAULTS.membership (15000) */
  suspectAfterMs?: number;
  /** No heartbeat or successful ping for this long: down. @default MESH_DEFAULTS.membership (30000) */
  downAfterMs?: number;
}

/** A change of a member's state. */
export interface MemberEvent {
  id: string;
  from: MemberState | undefined;
  to: MemberState;
}

/**
 * Failure detector driven by evidence of life (a heartbeat row arriving, a successful ping),
 * measured on this peer's own monotonic clock so clock skew between machines does not matter.
 * `tick` is the loop's step: tests drive it with explicit times.
 */
export class Membership {
  readonly #suspectAfter: number;
  readonly #downAfter: number;
  readonly #lastSeen = new Map<string, number>();
  readonly #state = new Map<string, MemberState>();

  constructor(init: MembershipInit = {}) {
    this.#suspectAfter = init.suspectAfterMs ?? MESH_DEFAULTS.membership.suspectAfterMs;
    this.#downAfter = init.downAfterMs ?? MESH_DEFAULTS.membership.downAfterMs;
    if (!(this.#suspectAfter > 0 && this.#downAfter > this.#suspectAfter)) throw new Error('membership timeouts must satisfy 0 < suspect < down');
  }

  /** Records evidence that `id` is alive at `now`; returns the state change, if any. */
  observe(id: string, now: number): MemberEvent | undefined {
    this.#lastSeen.set(id, Math.max(now, this.#lastSeen.get(id) ?? now));
    return this.#set(id, 'alive');
  }

  /** Re-evaluates every member at `now`; returns the changes. */
  tick(now: number): MemberEvent[] {
    const events: MemberEvent[] = [];
    for (const [id, seen] of this.#lastSeen) {
      const silent = now - seen;
      const next: MemberState = silent >= this.#downAfter ? 'down' : silent >= this.#suspectAfter ? 'suspect' : 'alive';
      const event = this.#set(id, next);
      if (event) events.push(event);
    }
    return events;
  }

  /** Current state of `id`, undefined if never seen. */
  state(id: string): MemberState | undefined {
    return this.#state.get(id);
  }

  /** Members in a given state. */
  members(state?: MemberState): string[] {
    return [...this.#state].filter(([, s]) => state === undefined || s === state).map(([id]) => id);
  }

  /** Forgets a member (its row was deleted). */
  forget(id: string): void {
    this.#lastSeen.delete(id);
    this.#state.delete(id);
  }

  #set(id: string, next: MemberState): MemberEvent | undefined {
    const previous = this.#state.get(id);
    if (previous === next) return undefined;
    this.#state.set(id, next);
    return { id, from: previous, to: next };
  }
}

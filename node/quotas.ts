import { PeerError } from './errors.ts';
import { QUOTA_KINDS, orgQuotas, orgUsage, type QuotaKind, type QuotaLimits, type QuotaUsage, type RecordStore } from './records/index.ts';

/** What asks for room under an org's quotas: a new sprite, a start (or wake from cold sleep), a checkpoint. */
export type QuotaAction = 'create' | 'start' | 'checkpoint';

/** Where the sprite manager asks before an action that adds to an org's usage. */
export interface QuotaGate {
  /** Throws ERR_QUOTA_EXCEEDED when `org` has no room for `action` now (counts nothing). */
  check(org: string, action: QuotaAction): void;
  /**
   * Throws ERR_QUOTA_EXCEEDED (429) when `org` has no room for `action`; otherwise counts the
   * action as under way until the returned release runs (once its result is in the records).
   */
  admit(org: string, action: QuotaAction): () => void;
}

/** The kinds each action is refused by, and what it adds while under way. */
const ACTIONS: Record<QuotaAction, { checks: readonly QuotaKind[]; adds: Partial<QuotaUsage> }> = {
  create: { checks: ['sprites', 'running', 'storage_bytes'], adds: { sprites: 1, running: 1 } },
  start: { checks: ['running'], adds: { running: 1 } },
  checkpoint: { checks: ['checkpoints', 'storage_bytes'], adds: { checkpoints: 1 } },
};

/** What a refused caller is told to do, per kind. */
const HINTS: Record<QuotaKind, string> = {
  sprites: 'destroy a sprite, or ask the operator to raise the quota',
  running: 'stop a sprite (or let one sleep cold), or ask the operator to raise the quota',
  checkpoints: 'delete a checkpoint, or ask the operator to raise the quota',
  storage_bytes: 'delete checkpoints or sprites, or ask the operator to raise the quota',
};

/** What a refused caller is told to wait: room comes when a sprite sleeps cold, or the org or the operator frees some. */
export const QUOTA_RETRY_AFTER_SECONDS = 30;

/** One kind of an org's quota as the API shows it. */
export interface QuotaView {
  /** null: no limit. */
  limit: number | null;
  used: number;
  /** Where the limit comes from: the org's own override, or the peer's default. */
  source: 'org' | 'default';
}

/**
 * Per-org quotas, checked on the peer serving the request against its replica of the records (no
 * central count: see docs/API.md#quotas for the overshoot this allows). Actions admitted here and
 * not yet in the records count too, so one peer never lets an org past a limit by itself.
 */
export class OrgQuotas implements QuotaGate {
  readonly #store: RecordStore['store'];
  readonly #defaults: Readonly<QuotaLimits>;
  /** Admitted actions whose results are not in the records yet, per org. */
  readonly #pending = new Map<string, QuotaUsage>();

  constructor(store: RecordStore['store'], defaults: Readonly<QuotaLimits>) {
    this.#store = store;
    this.#defaults = defaults;
  }

  /** The org's limits: its overrides over the peer's defaults. */
  limits(org: string): QuotaLimits {
    return { ...this.#defaults, ...orgQuotas(this.#store, org) };
  }

  /** What the org holds now, admitted actions under way here included. */
  usage(org: string): QuotaUsage {
    const usage = orgUsage(this.#store, org);
    const pending = this.#pending.get(org);
    if (pending) for (const kind of QUOTA_KINDS) usage[kind] += pending[kind];
    return usage;
  }

  /** Each kind's limit, use and source, for an org's view. */
  view(org: string): Record<QuotaKind, QuotaView> {
    const own = orgQuotas(this.#store, org);
    const limits = this.limits(org);
    const usage = this.usage(org);
    const view = {} as Record<QuotaKind, QuotaView>;
    for (const kind of QUOTA_KINDS) view[kind] = { limit: limits[kind], used: usage[kind], source: own[kind] === undefined ? 'default' : 'org' };
    return view;
  }

  /** Throws ERR_QUOTA_EXCEEDED when `org` has no room for `action` now. */
  check(org: string, action: QuotaAction): void {
    const limits = this.limits(org);
    const usage = this.usage(org);
    for (const kind of ACTIONS[action].checks) {
      const limit = limits[kind];
      if (limit !== null && usage[kind] >= limit) throw quotaExceeded(org, kind, usage[kind], limit);
    }
  }

  admit(org: string, action: QuotaAction): () => void {
    // No await between the check and the count: two actions here cannot take one place.
    this.check(org, action);
    const { adds } = ACTIONS[action];
    this.#add(org, adds, 1);
    let released = false;
    return () => {
      if (!released) this.#add(org, adds, -1);
      released = true;
    };
  }

  #add(org: string, adds: Partial<QuotaUsage>, sign: 1 | -1): void {
    const pending = this.#pending.get(org) ?? { sprites: 0, running: 0, checkpoints: 0, storage_bytes: 0 };
    for (const kind of QUOTA_KINDS) pending[kind] += sign * (adds[kind] ?? 0);
    if (QUOTA_KINDS.every((kind) => pending[kind] === 0)) this.#pending.delete(org);
    else this.#pending.set(org, pending);
  }
}

/** The 429 of a quota: Sprites' rate-limit fields, so its SDKs' APIError reads `retryAfterSeconds`, `currentCount` and `limit`. */
function quotaExceeded(org: string, kind: QuotaKind, used: number, limit: number): PeerError {
  const what = kind === 'storage_bytes' ? `${used} stored bytes of its quota of ${limit}` : `${used} ${kind === 'running' ? 'running sprites' : kind} of its quota of ${limit}`;
  return new PeerError('ERR_QUOTA_EXCEEDED', `org ${org} holds ${what}: ${HINTS[kind]}`, {
    details: { quota: kind, current_count: used, limit, retry_after_seconds: QUOTA_RETRY_AFTER_SECONDS },
  });
}

import { requireOrg } from './orgs.ts';
import type { RecordStore } from './store.ts';
import { orgsTable, spriteDocsTable, spritesTable } from './tables.ts';

/** What an org's quotas bound: its sprites, those running, their checkpoints, the bytes they hold in the object store. */
export const QUOTA_KINDS = ['sprites', 'running', 'checkpoints', 'storage_bytes'] as const;
export type QuotaKind = (typeof QUOTA_KINDS)[number];
/** A limit per kind; null: no limit. */
export type QuotaLimits = Record<QuotaKind, number | null>;
/** What an org holds, per kind. */
export type QuotaUsage = Record<QuotaKind, number>;

/** The orgs table's column of each kind's override. */
const COLUMNS = { sprites: 'max_sprites', running: 'max_running', checkpoints: 'max_checkpoints', storage_bytes: 'max_storage_bytes' } as const;

/** States in which a sprite holds a place on a peer, awake or frozen with its memory: what `running` counts. */
const RUNNING_STATES: ReadonlySet<string> = new Set(['running', 'warm']);

/** A limit or a usage figure as stored: a whole number from 0 up. */
function count(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The org's own quotas (the operator's overrides); kinds it has none for are left out, and so is anything malformed from gossip. */
export function orgQuotas(store: RecordStore['store'], org: string): Partial<QuotaLimits> {
  const row = store.get(orgsTable, { name: org });
  const quotas: Partial<QuotaLimits> = {};
  for (const kind of QUOTA_KINDS) {
    const value = row?.[COLUMNS[kind]];
    if (count(value)) quotas[kind] = value;
  }
  return quotas;
}

/**
 * Sets (a number) or clears (null: the peer's default applies again) the quotas given of an org;
 * kinds left out stay. ERR_ORG_NOT_FOUND for an org this peer does not know.
 */
export function setOrgQuotas(mesh: RecordStore, org: string, changes: Partial<QuotaLimits>): void {
  requireOrg(mesh.store, org);
  const columns: Record<string, number | null> = {};
  for (const kind of QUOTA_KINDS) if (changes[kind] !== undefined) columns[COLUMNS[kind]] = changes[kind];
  if (Object.keys(columns).length === 0) return;
  mesh.write((tx) => tx.upsert(orgsTable, { name: org, ...columns }));
}

/** A sprite's usage document as its owner measures it (node/sprites/usage.ts). */
export interface SpriteUsage {
  checkpoints: number;
  stored_bytes: number;
}

/** Checks a usage document read from the store; throws on anything else. */
export function parseUsage(value: unknown): SpriteUsage {
  const { checkpoints, stored_bytes: bytes } = (value ?? {}) as { checkpoints?: unknown; stored_bytes?: unknown };
  if (!count(checkpoints) || !count(bytes)) throw new Error('bad usage document');
  return { checkpoints, stored_bytes: bytes };
}

/**
 * What an org holds in this replica: its sprite rows, those awake or in warm sleep, and from each
 * sprite's usage document (written by its owner) its checkpoints and stored bytes.
 */
export function orgUsage(store: RecordStore['store'], org: string): QuotaUsage {
  const usage: QuotaUsage = { sprites: 0, running: 0, checkpoints: 0, storage_bytes: 0 };
  for (const row of store.all(spritesTable)) {
    if (row.org !== org) continue;
    usage.sprites += 1;
    if (RUNNING_STATES.has(row.state)) usage.running += 1;
    const doc = store.get(spriteDocsTable, { sprite: row.id, kind: 'usage' });
    if (!doc) continue;
    try {
      const measured = parseUsage(JSON.parse(doc.doc));
      usage.checkpoints += measured.checkpoints;
      usage.storage_bytes += measured.stored_bytes;
    } catch {
      // A malformed document counts as nothing measured yet.
    }
  }
  return usage;
}

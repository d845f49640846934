import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineTable, openStore } from '../../gossip/index.ts';
import type { Changeset, CrdtStore, StoreInit } from '../../gossip/index.ts';

/** The table most store tests use: a text key and one column of each type. */
export const kv = defineTable({
  name: 'kv',
  primaryKey: ['k'],
  columns: {
    k: 'text',
    a: { type: 'text', nullable: true },
    n: 'integer',
    f: 'boolean',
    r: { type: 'real', default: 1.5 },
    b: { type: 'blob', nullable: true },
  },
});

/** A table with a composite key. */
export const pairs = defineTable({ name: 'pairs', primaryKey: ['owner', 'slot'], columns: { owner: 'text', slot: 'integer', note: 'text' } });

/** Site ids that sort in the order of their letters. */
export const SITE = { a: 'a'.repeat(32), b: 'b'.repeat(32), c: 'c'.repeat(32), d: 'd'.repeat(32), e: 'e'.repeat(32) } as const;

/** A temp dir of store files, removed by `cleanup` with every store closed. */
export function storeDir(prefix = 'gossip-store') {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const open: CrdtStore[] = [];
  let counter = 0;
  return {
    dir,
    /** Opens a store on a fresh (or named) file in the dir. */
    open(init: Partial<StoreInit> & { file?: string } = {}): CrdtStore {
      counter += 1;
      const store = openStore({ path: join(dir, init.file ?? `store-${counter}.db`), tables: [kv, pairs], ...init });
      open.push(store);
      return store;
    },
    cleanup(): void {
      for (const store of open) store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One anti-entropy pull using only the public sync surface: `to` asks `from` for what it lacks
 * (heads and known ranges), `from` serves it in chunks, `to` applies them. Returns what was applied.
 */
export function pull(to: CrdtStore, from: CrdtStore, maxChanges = 3): { applied: number; rejected: number } {
  const needs = to.needs(from.heads(), from.known());
  let applied = 0;
  let rejected = 0;
  for (const [site, ranges] of Object.entries(needs)) {
    for (const [lo, hi] of ranges) {
      for (const changeset of from.changesFor(site, lo, hi, { maxChanges })) {
        const result = to.apply([changeset]);
        applied += result.applied;
        rejected += result.rejected;
      }
    }
  }
  return { applied, rejected };
}

/** Pulls every store from every other until nothing more is applied. */
export function syncAll(stores: readonly CrdtStore[]): void {
  for (let round = 0; round < 10; round += 1) {
    let applied = 0;
    for (const to of stores) for (const from of stores) if (to !== from) applied += pull(to, from).applied;
    if (applied === 0) return;
  }
  throw new Error('sync did not settle in 10 rounds');
}

/** Delivers changesets whole to a store, failing on any rejection. */
export function deliver(to: CrdtStore, ...changesets: (Changeset | undefined)[]): void {
  const result = to.apply(changesets.filter((cs) => cs !== undefined));
  if (result.rejected > 0) throw new Error(`rejected: ${JSON.stringify(result.rejections)}`);
}

/** The whole dump as a string, for comparing replicas and before/after. */
export function state(store: CrdtStore): string {
  return JSON.stringify(store.dump());
}

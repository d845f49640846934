import { decode, encode } from 'cbor-x';
import { StorageError, hasCode } from '../errors.ts';
import type { ObjectInfo, ObjectStore } from '../store/store.ts';
import type { LogRecord, VolumeState } from './meta-db.ts';

/**
 * The metadata of a volume in the object store, Litestream-style: every commit appends one
 * immutable log record, snapshots compact the log, and any peer rebuilds the volume from the
 * newest snapshot plus the records after it.
 *
 *   volumes/<id>/snap/<seq:16 hex>-<epoch:8 hex>   full state (cbor VolumeState)
 *   volumes/<id>/log/<seq:16 hex>-<epoch:8 hex>    one commit (cbor LogRecord)
 *   volumes/<id>/lease                             the writer lease (see lease.ts)
 *
 * The epoch in keys and records fences a stale writer: at each sequence number the record with
 * the highest epoch wins, and once an epoch has been seen, records of older epochs are ignored.
 */

/** The key prefix of everything a volume keeps in the store. */
export function volumePrefix(id: string): string {
  return `volumes/${id}/`;
}

function seqKey(kind: 'log' | 'snap', id: string, seq: number, epoch: number): string {
  return `${volumePrefix(id)}${kind}/${seq.toString(16).padStart(16, '0')}-${epoch.toString(16).padStart(8, '0')}`;
}

function parseSeqKey(key: string): { kind: 'log' | 'snap'; seq: number; epoch: number } | undefined {
  const match = /\/(log|snap)\/([0-9a-f]{16})-([0-9a-f]{8})$/.exec(key);
  if (!match) return undefined;
  return { kind: match[1] as 'log' | 'snap', seq: parseInt(match[2]!, 16), epoch: parseInt(match[3]!, 16) };
}

/** Appends a log record; the key is new, so it is written create-only where the store can. */
export async function appendRecord(store: ObjectStore, record: LogRecord): Promise<void> {
  await store.put(seqKey('log', record.volume, record.seq, record.epoch), Buffer.from(encode(record)), { ifNoneMatch: store.conditionalWrites });
}

/** Writes a snapshot, then deletes the log records and snapshots it makes redundant. */
export async function writeSnapshot(store: ObjectStore, state: VolumeState): Promise<void> {
  const key = seqKey('snap', state.volume.id, state.seq, state.epoch);
  await store.put(key, Buffer.from(encode(state)));
  for await (const info of store.list(volumePrefix(state.volume.id))) {
    const parsed = parseSeqKey(info.key);
    if (!parsed || info.key === key) continue;
    if (parsed.seq <= state.seq) await store.delete(info.key);
  }
}

/** What the store holds for one volume: the newest snapshot and the valid records after it. */
export interface StoredVolume {
  /** The newest snapshot, absent when `after` made it unnecessary. */
  snapshot: VolumeState | undefined;
  /** Records after the snapshot (or after `after.seq`), in sequence, stale epochs removed. */
  records: LogRecord[];
  /** Sequence number of the last valid record (or of the snapshot). */
  seq: number;
  /** Epoch of the last valid record (or of the snapshot). */
  epoch: number;
}

/**
 * Loads a volume's metadata from the store. With `after`, a caller that already applied records
 * up to `after.seq` (written with `after.epoch`) gets only newer records, unless a newer snapshot
 * replaced them.
 * Fails with ERR_VOLUME_NOT_FOUND when the store has nothing for the volume, and with
 * ERR_METADATA_CORRUPT when valid records do not chain.
 */
export async function loadVolume(store: ObjectStore, id: string, after?: { seq: number; epoch: number }): Promise<StoredVolume> {
  const snaps: Array<{ key: string; seq: number; epoch: number }> = [];
  const logs = new Map<number, Array<{ key: string; epoch: number }>>();
  for await (const info of store.list(volumePrefix(id))) {
    const parsed = parseSeqKey(info.key);
    if (!parsed) continue;
    if (parsed.kind === 'snap') snaps.push({ key: info.key, seq: parsed.seq, epoch: parsed.epoch });
    else {
      let list = logs.get(parsed.seq);
      if (!list) logs.set(parsed.seq, (list = []));
      list.push({ key: info.key, epoch: parsed.epoch });
    }
  }
  snaps.sort((a, b) => a.seq - b.seq || a.epoch - b.epoch);
  const newest = snaps.at(-1);
  if (!newest && logs.size === 0) throw new StorageError('ERR_VOLUME_NOT_FOUND', `volume ${id} not found in ${store.url}`, { fields: { volume: id } });
  let snapshot: VolumeState | undefined;
  let seq: number;
  let epoch: number;
  if (newest && (after === undefined || newest.seq > after.seq)) {
    snapshot = decodeObject<VolumeState>(await getMeta(store, newest.key), newest.key);
    seq = snapshot.seq;
    epoch = snapshot.epoch;
  } else {
    if (after === undefined) throw new StorageError('ERR_METADATA_CORRUPT', `volume ${id} has log records but no snapshot`, { fields: { volume: id } });
    seq = after.seq;
    epoch = after.epoch;
  }
  const records: LogRecord[] = [];
  for (;;) {
    const candidates = (logs.get(seq + 1) ?? []).filter((candidate) => candidate.epoch >= epoch);
    if (candidates.length === 0) break;
    const chosen = candidates.reduce((a, b) => (b.epoch > a.epoch ? b : a));
    const record = decodeObject<LogRecord>(await getMeta(store, chosen.key), chosen.key);
    records.push(record);
    seq = record.seq;
    epoch = record.epoch;
  }
  // A valid record beyond the end of the chain means a record in between went missing.
  for (const [at, list] of logs) {
    if (at > seq + 1 && list.some((candidate) => candidate.epoch >= epoch)) {
      throw new StorageError('ERR_METADATA_CORRUPT', `volume ${id}: log record ${seq + 1} is missing before ${at}`, { fields: { volume: id } });
    }
  }
  return { snapshot, records, seq, epoch };
}

/** The maps a stored volume's snapshot and records add up to. */
export interface ReplayedMaps {
  head: Map<number, string>;
  versions: Map<number, Map<number, string>>;
}

/** Replays a loaded volume in memory: the exact head and checkpoint maps after its last record. */
export function replayMaps(stored: StoredVolume): ReplayedMaps {
  const head = new Map<number, string>(stored.snapshot?.head ?? []);
  const versions = new Map<number, Map<number, string>>();
  for (const version of stored.snapshot?.versions ?? []) versions.set(version.version, new Map(version.map));
  for (const record of stored.records) {
    for (const op of record.ops) {
      if (op.op === 'map') {
        for (const [unit, object] of op.units) {
          if (object) head.set(unit, object);
          else head.delete(unit);
        }
      } else if (op.op === 'checkpoint') {
        versions.set(op.version, new Map(head));
      } else if (op.op === 'restore') {
        const version = versions.get(op.version);
        if (version) {
          head.clear();
          for (const [unit, object] of version) head.set(unit, object);
        }
      } else if (op.op === 'drop') {
        versions.delete(op.version);
      }
    }
  }
  return { head, versions };
}

/** Deletes everything a volume keeps in the store (its data objects stay until GC). */
export async function deleteVolumeMeta(store: ObjectStore, id: string): Promise<void> {
  for await (const info of store.list(volumePrefix(id))) await store.delete(info.key);
}

/** Ids of every volume that has metadata in the store. */
export async function listStoredVolumes(store: ObjectStore): Promise<string[]> {
  const ids = new Set<string>();
  for await (const { id } of metadataObjects(store, '')) ids.add(id);
  return [...ids].sort();
}

/**
 * Volumes whose id starts with `idPrefix` and whose metadata has not changed for `idleMs`
 * (the newest of their snapshot and log objects is older): nothing is writing to them.
 */
export async function idleVolumes(store: ObjectStore, idPrefix: string, idleMs: number, now = Date.now()): Promise<string[]> {
  const newest = new Map<string, number>();
  for await (const { id, info } of metadataObjects(store, idPrefix)) newest.set(id, Math.max(newest.get(id) ?? 0, info.modified));
  return [...newest].filter(([, modified]) => now - modified >= idleMs).map(([id]) => id).sort();
}

/** The snapshot and log objects of the volumes whose id starts with `idPrefix`, with their volume. */
async function* metadataObjects(store: ObjectStore, idPrefix: string): AsyncIterable<{ id: string; info: ObjectInfo }> {
  for await (const info of store.list(`volumes/${idPrefix}`)) {
    const id = info.key.split('/')[1];
    if (id && parseSeqKey(info.key)) yield { id, info };
  }
}

async function getMeta(store: ObjectStore, key: string): Promise<Buffer> {
  try {
    return (await store.get(key)).body;
  } catch (error) {
    // Listed a moment ago: a missing record now means a concurrent compaction; say so.
    if (hasCode(error, 'ERR_OBJECT_NOT_FOUND')) throw new StorageError('ERR_STORE_UNAVAILABLE', `metadata ${key} vanished while loading; retry`, { cause: error, fields: { key } });
    throw error;
  }
}

function decodeObject<T>(body: Buffer, key: string): T {
  try {
    return decode(body) as T;
  } catch (error) {
    throw new StorageError('ERR_METADATA_CORRUPT', `metadata ${key} does not decode`, { cause: error, fields: { key } });
  }
}

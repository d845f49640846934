import type { ServerResponse } from 'node:http';
import type { SpriteRecord, SpriteRegistry } from '../records/index.ts';
import { countState, type ListQuery, type StateCounts } from './sprite-list.ts';

/** How often the stream says it is alive (with the org's counts) when nothing changes. */
const HEARTBEAT_MS = 15_000;
/** A client this far behind is cut off (it lists again when it reconnects). */
const MAX_BUFFERED = 1024 * 1024;

/** What a watch stream follows: the replicated records, whose sprites the caller sees, its org. */
export interface WatchInit {
  registry: Pick<SpriteRegistry, 'list' | 'get' | 'watch'>;
  /** True for a record the caller may see (its org's; every one for an admin). */
  visible: (record: SpriteRecord) => boolean;
  /** The caller's org: the events' `org.name`. */
  org: string;
  query: ListQuery;
}

/**
 * `GET /v1/sprites` with `Accept: application/x-ndjson`: the live stream `watchSprites` reads. One
 * line per event: first the state of each sprite the caller sees whose name starts with `prefix`
 * (at most `max_results` of them when given), then a heartbeat, then a line whenever such a
 * sprite's status, runtime version or last running/warm time changes in the replicated records
 * (`status: "deleted"` when it goes), and a heartbeat every 15 s. Every line carries the org's
 * running, warm and cold counts, kept from the same changes (no listing per event).
 */
export function watchSprites(res: ServerResponse, init: WatchInit): void {
  const { registry, visible, org, query } = init;
  const matches = (name: string): boolean => name.startsWith(query.prefix);
  // Every visible sprite's state (the counts follow it), and what was last sent of each.
  const states = new Map<string, string>();
  const sent = new Map<string, string>();
  const counts: StateCounts = { running: 0, warm: 0, cold: 0 };
  const records = registry.list().filter(visible);
  for (const record of records) {
    states.set(record.name, record.state);
    countState(counts, record.state, 1);
  }
  const orgView = (): StateCounts & { name: string } => ({ name: org, ...counts });
  const write = (event: object): void => {
    if (res.writableLength > MAX_BUFFERED) res.destroy();
    else res.write(`${JSON.stringify(event)}\n`);
  };
  const send = (record: SpriteRecord): void => {
    const key = JSON.stringify([record.state, record.version, record.lastRunningAt, record.lastWarmingAt]);
    if (sent.get(record.name) === key) return;
    sent.set(record.name, key);
    write({
      name: record.name, status: record.state, running_version: record.version, last_running_at: record.lastRunningAt,
      last_warming_at: record.lastWarmingAt, timestamp: new Date().toISOString(), org: orgView(),
    });
  };
  const heartbeat = (): void => write({ type: 'heartbeat', timestamp: new Date().toISOString(), org: orgView() });

  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const listed = records.filter((record) => matches(record.name));
  for (const record of query.limited ? listed.slice(0, query.maxResults) : listed) send(record);
  heartbeat();
  const timer = setInterval(heartbeat, HEARTBEAT_MS).unref();
  const unwatch = registry.watch((name, gone) => {
    try {
      const found = gone ? undefined : registry.get(name);
      const record = found && visible(found) ? found : undefined;
      const before = states.get(name);
      if (before !== undefined) countState(counts, before, -1);
      if (record) {
        states.set(name, record.state);
        countState(counts, record.state, 1);
        if (matches(name)) send(record);
      } else if (before !== undefined) {
        states.delete(name);
        sent.delete(name);
        if (matches(name)) write({ name, status: 'deleted', timestamp: new Date().toISOString(), org: orgView() });
      }
    } catch {
      res.destroy();
    }
  });
  // The response closes when the client goes (or the server stops): the stream ends with it.
  res.once('close', () => {
    clearInterval(timer);
    unwatch();
  });
}

import { PeerError } from '../errors.ts';
import { SPRITE_NAME } from '../names.ts';
import type { SpriteRecord } from '../records/index.ts';

/** The most sprites one page holds (Sprites' limit); a larger `max_results` is read as this. */
export const MAX_PAGE = 50;

/** `GET /v1/sprites`'s query: a name prefix, a page size, and where the previous page ended. */
export interface ListQuery {
  prefix: string;
  /** The page size: `max_results`, at most {@link MAX_PAGE}. */
  maxResults: number;
  /** True when the client gave `max_results` (the watch stream lists that many, else all). */
  limited: boolean;
  /** Names after this one (the last of the previous page), or undefined for the first page. */
  after: string | undefined;
}

/** Sprites of one org (or every org, for an admin) by state, as Sprites counts them. */
export interface StateCounts {
  running: number;
  warm: number;
  cold: number;
}

/** One page of sprites. */
export interface Page {
  records: SpriteRecord[];
  /** The token of the next page, or null when this is the last. */
  next: string | null;
}

/** Reads `prefix`, `max_results` and `continuation_token`; ERR_BAD_REQUEST for values no client of this API sends. */
export function parseListQuery(url: URL): ListQuery {
  const prefix = url.searchParams.get('prefix') ?? '';
  if (prefix.length > 63 || !/^[a-z0-9-]*$/.test(prefix)) throw new PeerError('ERR_BAD_REQUEST', "prefix must be up to 63 characters of a-z, 0-9 and '-' (the start of a sprite name)");
  const max = url.searchParams.get('max_results');
  const maxResults = max === null ? MAX_PAGE : Number(max);
  if (!/^\d{1,9}$/.test(max ?? '1') || maxResults < 1) throw new PeerError('ERR_BAD_REQUEST', `max_results must be a whole number from 1 to ${MAX_PAGE}`);
  const token = url.searchParams.get('continuation_token');
  return { prefix, maxResults: Math.min(maxResults, MAX_PAGE), limited: max !== null, after: token === null || token === '' ? undefined : readToken(token) };
}

/**
 * One page of the records `visible` admits whose names start with `prefix`, by name, after the
 * name the token holds. The token is the page's last name (encoded), not a position: sprites made
 * or destroyed between two pages never make a later page repeat or skip a sprite that stayed.
 * `records` must be sorted by name (the store's order).
 */
export function pageOf(records: readonly SpriteRecord[], query: ListQuery, visible: (record: SpriteRecord) => boolean): Page {
  const page: SpriteRecord[] = [];
  for (const record of records) {
    if (!record.name.startsWith(query.prefix) || (query.after !== undefined && record.name <= query.after) || !visible(record)) continue;
    if (page.length === query.maxResults) return { records: page, next: tokenOf(page[page.length - 1]!.name) };
    page.push(record);
  }
  return { records: page, next: null };
}

/** How many of the records `visible` admits are running, warm and cold. */
export function countStates(records: readonly SpriteRecord[], visible: (record: SpriteRecord) => boolean): StateCounts {
  const counts: StateCounts = { running: 0, warm: 0, cold: 0 };
  for (const record of records) if (visible(record)) countState(counts, record.state, 1);
  return counts;
}

/** Adds `by` (1 or -1) to the count of `state`, if it is one Sprites counts. */
export function countState(counts: StateCounts, state: string, by: number): void {
  if (state === 'running' || state === 'warm' || state === 'cold') counts[state] += by;
}

/** The opaque continuation token of a page that ended at `name`. */
function tokenOf(name: string): string {
  return Buffer.from(`after:${name}`).toString('base64url');
}

function readToken(token: string): string {
  const text = /^[A-Za-z0-9_-]{1,128}$/.test(token) ? Buffer.from(token, 'base64url').toString() : '';
  const name = text.startsWith('after:') ? text.slice('after:'.length) : '';
  if (!SPRITE_NAME.test(name)) throw new PeerError('ERR_BAD_REQUEST', 'continuation_token is not one this API gave');
  return name;
}

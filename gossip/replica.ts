import type { Range } from './ranges.ts';

/** What applying one received batch did. */
export interface ReceiveResult {
  /** Versions that became complete and were applied. */
  completed: number;
  /** This replica now lacks some version below the newest one in the batch (a message was lost or reordered). */
  behind: boolean;
  /** Rows not merged because a value broke its column's content rule (the sender is not to be relayed). */
  refused: number;
}

/** What broadcast and anti-entropy need from the replicated store (see store-replica.ts). */
export interface Replica {
  /** Versions this replica holds, per site id, as ranges. */
  known(): Record<string, Range[]>;
  /** Encoded batches holding the site's versions in `range` (superseded versions included as empty), each bounded in size. */
  serve(site: string, range: Range): Uint8Array[];
  /** Validates and applies one received batch; throws on a malformed one, leaving the store unchanged. */
  receive(batch: Uint8Array, from: string): ReceiveResult;
  /** True when this replica lacks `version` of `site` or any version below it. */
  lacksUpTo(site: string, version: number): boolean;
}

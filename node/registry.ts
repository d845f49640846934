/**
 * Lifecycle state of a sprite as recorded: `warm` is frozen with its memory kept, `cold` stopped by
 * the idle timer (both wake on use); `stopped` is a user's stop (only `start` or its URL starts it).
 */
export type SpriteState = 'running' | 'warm' | 'cold' | 'stopped' | 'failed';

/** The record of one sprite. */
export interface SpriteRecord {
  name: string;
  /** Internal id: names the sprite's directory, volume and cgroup. */
  id: string;
  state: SpriteState;
  /** Peer that runs the sprite. */
  owner: string;
  httpPort: number;
  created: string;
  updated: string;
  /** Why the sprite failed, when it did. */
  reason?: string;
}

/** Where sprite records live: the mesh's replicated store (MeshRegistry), seen by every peer. */
export interface SpriteRegistry {
  /** The record, or undefined. */
  get(name: string): SpriteRecord | undefined;
  /** All records, by name. */
  list(): SpriteRecord[];
  /** Adds a record; throws ERR_NAME_TAKEN if the name exists. */
  insert(record: SpriteRecord): void;
  /** Changes state (and reason); does nothing for a missing name. */
  setState(name: string, state: SpriteState, reason?: string): void;
  /** Removes a record; removing a missing name is not an error. */
  remove(name: string): void;
  close(): void;
}

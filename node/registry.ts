/** Lifecycle state of a sprite as recorded. */
export type SpriteState = 'running' | 'stopped' | 'failed';

/** The record of one sprite. */
export interface SpriteRecord {
  name: string;
  /** Internal id: names the sprite's directory, volume and cgroup. */
  id: string;
  state: SpriteState;
  /** Peer that runs the sprite. */
  owner: string;
  /** The org the sprite belongs to: its creator's. */
  org: string;
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

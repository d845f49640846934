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
  /** Raised by every change of owner: a peer that sees a higher epoch than its own has lost the sprite. */
  epoch: number;
  /** The object store that holds the sprite's disk (credentials removed); another peer restores it from there. */
  volume: string | null;
  /** The org the sprite belongs to: its creator's. */
  org: string;
  /** Names of its services, as mirrored into the record by the owner. */
  services: string[];
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
  /** Changes state (and reason) of a sprite `owner` owns; does nothing when the name is missing or owned by another peer. */
  setState(name: string, owner: string, state: SpriteState, reason?: string): void;
  /**
   * Makes `owner` the sprite's owner with the next epoch, unless the record changed since `seen`
   * (another peer claimed it first): returns the new record, or undefined when the claim lost.
   */
  claim(seen: SpriteRecord, owner: string, state: SpriteState): SpriteRecord | undefined;
  /** The sprite's mirrored service definitions (JSON), or null. */
  services(name: string): string | null;
  /** Mirrors service definitions into the record of a sprite `owner` owns. */
  setServices(name: string, owner: string, services: string): void;
  /** Calls `listener` with the name of every sprite whose record changed (or went); returns the unsubscribe. */
  watch(listener: (name: string) => void): () => void;
  /** Removes a record `owner` owns; a missing name, or one owned by another peer, is left alone. */
  remove(name: string, owner: string): void;
  close(): void;
}

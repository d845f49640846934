// The shapes of the API answers the CLI reads (see docs/API.md); only the fields it uses.

/** A sprite record. */
export interface Sprite {
  name: string;
  state: string;
  /** Peer that runs it. */
  owner: string;
  /** How the answering peer sees the owner: alive, suspect or down. */
  ownerState?: string;
  /** The org it belongs to. */
  org: string;
  created: string;
  [key: string]: unknown;
}

/** A supervised service inside a sprite, as Sprites shows it. */
export interface Service {
  name: string;
  cmd: string;
  args?: string[];
  dir?: string;
  needs?: string[];
  http_port?: number | null;
  state?: { status: string; pid?: number; started_at?: string; error?: string; restart_count?: number; next_restart_at?: string };
  [key: string]: unknown;
}

/** An exec session (`GET /v1/sprites/{name}/exec`). */
export interface Session {
  id: string;
  /** The command line, its words joined by spaces. */
  command: string;
  workdir: string;
  tty: boolean;
  created: string;
  /** A client is attached. */
  is_active: boolean;
  last_activity: string | null;
  bytes_per_second: number;
}

/** The warm pool's counters. */
export interface PoolStatus {
  [key: string]: unknown;
}

/** A base image of the mesh. */
export interface Image {
  name: string;
  /** What it was built from. */
  source: string;
  /** Bytes its disk takes. */
  bytes: number;
  /** Peer that built it. */
  peer: string;
  created: string;
  [key: string]: unknown;
}

// The shapes of the API answers the CLI reads (see docs/API.md); only the fields it uses.

/** A sprite, in Sprites' shape with the mesh's fields. */
export interface Sprite {
  name: string;
  /** running, warm, cold, stopped or failed. */
  status: string;
  /** Peer that runs it. */
  owner: string;
  /** How the answering peer sees the owner: alive, suspect or down. */
  owner_state?: string;
  /** The org it belongs to. */
  organization: string;
  created_at: string;
  /** Its URL on the answering peer's proxy (HTTPS when it has a listener), and the plain HTTP one. */
  url: string | null;
  http_url: string | null;
  url_settings: { auth: string };
  [key: string]: unknown;
}

/** One page of `GET /v1/sprites`. */
export interface SpritePage {
  sprites: Sprite[];
  has_more: boolean;
  next_continuation_token: string | null;
  /** The caller's org and its sprites by state. */
  name: string;
  running: number;
  warm: number;
  cold: number;
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

/** A sprite's recent use as the proxy saw it. */
export interface SpriteActivity {
  /** Wall-clock ms of the last request, or now while a request or WebSocket is open. */
  lastActive: number;
  /** WebSockets open through this peer now. */
  webSockets: number;
  /** HTTP requests under way through this peer now (waiting, uploading, streaming). */
  requests: number;
}

/**
 * Per-sprite last-active times and open request and WebSocket counts: what the idle timer reads. Only names the
 * mesh knows are tracked, and `forget` drops a destroyed sprite, so the map is bounded by the mesh.
 */
export class Activity {
  readonly #lastActive = new Map<string, number>();
  readonly #webSockets = new Map<string, number>();
  readonly #requests = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Marks a request for `name` now. */
  touch(name: string): void {
    this.#lastActive.set(name, this.#now());
  }

  /** Counts an open WebSocket of `name`; call the returned function once when it closes. */
  openWebSocket(name: string): () => void {
    return this.#open(this.#webSockets, name);
  }

  /** Counts an HTTP request of `name` under way (a long stream keeps the sprite awake); call the returned function once when it ends. */
  openRequest(name: string): () => void {
    return this.#open(this.#requests, name);
  }

  /** The sprite's activity, or undefined when no request has touched it since start. */
  get(name: string): SpriteActivity | undefined {
    const webSockets = this.#webSockets.get(name) ?? 0;
    const requests = this.#requests.get(name) ?? 0;
    const last = this.#lastActive.get(name);
    if (last === undefined && webSockets === 0 && requests === 0) return undefined;
    return { lastActive: webSockets + requests > 0 ? this.#now() : last!, webSockets, requests };
  }

  /** Every tracked sprite's activity. */
  all(): Map<string, SpriteActivity> {
    const out = new Map<string, SpriteActivity>();
    for (const name of new Set([...this.#lastActive.keys(), ...this.#webSockets.keys(), ...this.#requests.keys()])) out.set(name, this.get(name)!);
    return out;
  }

  /** Drops a sprite that no longer exists. */
  forget(name: string): void {
    this.#lastActive.delete(name);
  }

  #open(counts: Map<string, number>, name: string): () => void {
    this.touch(name);
    counts.set(name, (counts.get(name) ?? 0) + 1);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (counts.get(name) ?? 1) - 1;
      if (left > 0) counts.set(name, left);
      else counts.delete(name);
      this.touch(name);
    };
  }
}

/** A sprite's recent use as the proxy saw it. */
export interface SpriteActivity {
  /** Wall-clock ms of the last request, or now while a WebSocket is open. */
  lastActive: number;
  /** WebSockets open through this peer now. */
  webSockets: number;
}

/**
 * Per-sprite last-active times and open WebSocket counts: what the idle timer reads. Only names the
 * mesh knows are tracked, and `forget` drops a destroyed sprite, so the map is bounded by the mesh.
 */
export class Activity {
  readonly #lastActive = new Map<string, number>();
  readonly #webSockets = new Map<string, number>();
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
    this.touch(name);
    this.#webSockets.set(name, (this.#webSockets.get(name) ?? 0) + 1);
    let closed = false;
    return () => {
      if (closed) return;
      closed = true;
      const left = (this.#webSockets.get(name) ?? 1) - 1;
      if (left > 0) this.#webSockets.set(name, left);
      else this.#webSockets.delete(name);
      this.touch(name);
    };
  }

  /** The sprite's activity, or undefined when no request has touched it since start. */
  get(name: string): SpriteActivity | undefined {
    const webSockets = this.#webSockets.get(name) ?? 0;
    const last = this.#lastActive.get(name);
    if (last === undefined && webSockets === 0) return undefined;
    return { lastActive: webSockets > 0 ? this.#now() : last!, webSockets };
  }

  /** Every tracked sprite's activity. */
  all(): Map<string, SpriteActivity> {
    const out = new Map<string, SpriteActivity>();
    for (const name of new Set([...this.#lastActive.keys(), ...this.#webSockets.keys()])) out.set(name, this.get(name)!);
    return out;
  }

  /** Drops a sprite that no longer exists. */
  forget(name: string): void {
    this.#lastActive.delete(name);
  }
}

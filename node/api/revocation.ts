import type { TokenCheck } from '../../proxy/index.ts';

/**
 * What the API has open on behalf of each token (by its hash): a request under way, a stream, a
 * WebSocket. A token is checked once, when the connection opens; this closes what it opened when a
 * revocation reaches this peer (the tokens table is replicated, so every peer on a forwarding path
 * closes its part). What runs in the sprite is treated as if the client hung up: a detachable
 * session keeps running, as it does when its client goes away.
 */
export class OpenByToken {
  readonly #tokens: Pick<TokenCheck, 'ownerOfHash'>;
  readonly #open = new Map<string, Set<() => void>>();
  readonly #unsubscribe: () => void;

  /** `tokens` reports every change of the tokens table (as it does for the proxy's cache). */
  constructor(tokens: Pick<TokenCheck, 'ownerOfHash'> & Required<Pick<TokenCheck, 'onChange'>>) {
    this.#tokens = tokens;
    this.#unsubscribe = tokens.onChange(() => this.#sweep());
  }

  /** Registers `close` for a connection authenticated by `hash`; the returned function unregisters it (call it when the connection ends). */
  hold(hash: string, close: () => void): () => void {
    const set = this.#open.get(hash) ?? new Set();
    this.#open.set(hash, set);
    set.add(close);
    return () => {
      set.delete(close);
      if (set.size === 0 && this.#open.get(hash) === set) this.#open.delete(hash);
    };
  }

  stop(): void {
    this.#unsubscribe();
  }

  /** Closes everything opened by a token that is no longer valid (revoked, or its row gone). */
  #sweep(): void {
    for (const [hash, set] of this.#open) {
      if (this.#tokens.ownerOfHash(hash)) continue;
      this.#open.delete(hash);
      for (const close of set) {
        try {
          close();
        } catch {
          // One connection failing to close does not keep the others open.
        }
      }
    }
  }
}

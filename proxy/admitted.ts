import type { IncomingMessage } from 'node:http';
import { constants, type Http2ServerRequest, type Http2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import { PUBLIC, type TokenCheck } from './auth.ts';
import type { AnyResponse } from './pages.ts';
import { OpenByToken } from './revocation.ts';

/** The token hashes a connection or session is already held for (a keep-alive connection carries many requests). */
const HELD = Symbol('held for tokens');
type Holdable = (Duplex | Http2Session) & { [HELD]?: Set<string> };

/**
 * What each token opened through the proxy, closed when a revocation of it reaches this peer (the
 * replicated tokens table's change feed, as the API's OpenByToken follows it): a client's HTTP/1.1
 * connection (keep-alive, so later requests on it are not the only check), a WebSocket or other
 * upgraded socket, an HTTP/2 stream. An HTTP/2 session may carry other tokens' streams (and other
 * sprites', when a browser coalesces): it is closed gracefully (GOAWAY: no new streams, the others
 * finish) while the token's own streams are cancelled. A peer's hop connection is pooled and
 * carries many clients' requests one after another: only the request under way is held (cutting
 * its connection, which the sending peer's pool then drops). Entries are added on admission only
 * and removed when the connection, stream or request closes, so the map is bounded by what is open.
 */
export class AdmittedByToken {
  readonly #open: OpenByToken | undefined;

  /** `tokens` is the uncached check; without a change feed no revocation would be heard, so nothing is held. */
  constructor(tokens: TokenCheck) {
    this.#open = hasFeed(tokens) ? new OpenByToken(tokens) : undefined;
  }

  /** A web request admitted by `token`: a client's HTTP/1.1 connection, a hop's request, or an HTTP/2 stream and its session. */
  request(req: IncomingMessage | Http2ServerRequest, res: AnyResponse, token: string, hop: boolean): void {
    const open = this.#open;
    if (open === undefined || token === PUBLIC) return;
    const stream = (req as Http2ServerRequest).stream;
    if (stream === undefined) {
      const socket = req.socket as Holdable;
      if (!hop) this.#once(open, socket, token, () => socket.destroy());
      else if (!socket.destroyed) res.once('close', open.hold(token, () => socket.destroy()));
      return;
    }
    const session = stream.session;
    if (session) this.#once(open, session, token, () => session.close());
    if (!stream.destroyed) res.once('close', open.hold(token, () => stream.close(constants.NGHTTP2_CANCEL)));
  }

  /** An upgrade (WebSocket) admitted by `token`: its socket. */
  upgrade(socket: Duplex, token: string): void {
    if (this.#open !== undefined && token !== PUBLIC) this.#once(this.#open, socket, token, () => socket.destroy());
  }

  stop(): void {
    this.#open?.stop();
  }

  /** Holds `target` for `token` once, however many requests it carries; released when it closes. */
  #once(open: OpenByToken, target: Holdable, token: string, close: () => void): void {
    if (target.destroyed) return;
    const held = (target[HELD] ??= new Set());
    if (held.has(token)) return;
    held.add(token);
    target.once('close', open.hold(token, close));
  }
}

function hasFeed(tokens: TokenCheck): tokens is TokenCheck & Required<Pick<TokenCheck, 'onChange'>> {
  return tokens.onChange !== undefined;
}

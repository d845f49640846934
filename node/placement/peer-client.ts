import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { arbiterHeaders, hopHeaders, type Origin } from './hops.ts';
import type { PeerTarget } from './placement.ts';
import { relayRequest, relayUpgrade } from './relay.ts';

/** An arbiter that has not acknowledged a create (102) by then is passed over for the next one. */
const ARBITER_ANSWER_MS = 5000;

/** A peer adopting a sprite restores its disk and starts it before it answers. */
const ADOPT_ANSWER_MS = 120_000;

/** A client's request on its way to another peer: the answer that peer gives is relayed to `res`. */
export interface PeerCall {
  req: IncomingMessage;
  res: ServerResponse;
  /** The request body, read already (a create parses it before handing it on). */
  body?: Buffer;
}

/**
 * The typed client of requests between peers. Each method hands a client's request to another
 * peer's API in one role and relays the answer; the hop headers, the arbiter's 102 and its deadline
 * stay inside (see hops.ts). The caller's Authorization header travels unchanged: the receiver
 * authenticates the caller again.
 */
export class PeerClient {
  /** Requests between peers reuse connections. */
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 });

  /**
   * Hands a create to the name's arbiter, saying which peer the client asked (`origin`), and relays
   * its answer (201, 409 ERR_NAME_TAKEN, ...). Throws ERR_OWNER_UNREACHABLE, with nothing sent to
   * the client, when the arbiter cannot be reached or does not acknowledge within 5 s: the caller
   * then asks the next arbiter, and this one drops the request once its deadline passes.
   */
  arbitrateCreate(arbiter: PeerTarget, call: PeerCall, origin: Origin): Promise<void> {
    const headers = arbiterHeaders(origin, Date.now() + ARBITER_ANSWER_MS);
    return relayRequest(call.req, call.res, arbiter.api, headers, { agent: this.#agent, body: call.body, answerWithinMs: ARBITER_ANSWER_MS });
  }

  /**
   * Asks `peer` to create the sprite itself, skipping arbitration, and relays its answer. True when
   * it created the sprite (201). Throws ERR_OWNER_UNREACHABLE, with nothing sent to the client, when
   * the peer cannot be reached.
   */
  async placeCreate(peer: PeerTarget, call: PeerCall): Promise<boolean> {
    await relayRequest(call.req, call.res, peer.api, hopHeaders('place'), { agent: this.#agent, body: call.body });
    return call.res.statusCode === 201;
  }

  /**
   * Hands a request to the peer that serves it (a sprite's owner, a peer asked to drain), which
   * serves it where it lands, and relays the answer. Throws ERR_OWNER_UNREACHABLE, with nothing
   * sent to the client, when the peer cannot be reached.
   */
  forward(peer: PeerTarget, req: IncomingMessage, res: ServerResponse): Promise<void> {
    return relayRequest(req, res, peer.api, hopHeaders('owner'), { agent: this.#agent });
  }

  /**
   * Hands a WebSocket upgrade to the sprite's owner and splices the sockets once it agrees; a
   * refusal is relayed as plain HTTP. Throws ERR_OWNER_UNREACHABLE when the owner cannot be reached.
   */
  forwardUpgrade(peer: PeerTarget, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    return relayUpgrade(req, socket, head, peer.api, hopHeaders('owner'));
  }

  /**
   * Asks `peer` to take a sprite over from this draining peer (claim its record, restore its disk
   * from the store, start it when `start`), authenticated with this peer's admin `token`. Throws
   * with the peer's answer when it does not take the sprite.
   */
  async adopt(peer: PeerTarget, name: string, start: boolean, token: string): Promise<void> {
    const res = await fetch(`${peer.api}/v1/sprites/${encodeURIComponent(name)}/adopt`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ start }),
      signal: AbortSignal.timeout(ADOPT_ANSWER_MS),
    });
    if (res.status !== 200) throw new Error(`peer ${peer.peer} answered ${res.status}: ${await res.text()}`);
  }

  /** Closes the idle connections to other peers (peer shutdown). */
  close(): void {
    this.#agent.destroy();
  }
}

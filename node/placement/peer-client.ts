import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { LinkTls } from '../../proxy/index.ts';
import type { HopKeys, Origin } from './hops.ts';
import type { PeerTarget } from './placement.ts';
import { relayRequest, relayUpgrade, requestPath } from './relay.ts';

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

/** What the peer client is built from. */
export interface PeerClientInit {
  /** Signs the hop headers. */
  hops: HopKeys;
  /** This peer's link credentials (mutual TLS with the peer-link CA). */
  link: LinkTls;
}

/**
 * The typed client of requests between peers. Each method hands a client's request to another
 * peer's link listener in one role and relays the answer; the signed hop headers, the arbiter's
 * 102 and its deadline stay inside (see hops.ts). The caller's Authorization header travels
 * unchanged, inside the link's TLS: the receiver authenticates the caller again.
 */
export class PeerClient {
  readonly #init: PeerClientInit;
  /** Requests between peers reuse connections (keyed by peer and credentials, which are part of each request's TLS options). */
  readonly #agent = new https.Agent({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16 });

  constructor(init: PeerClientInit) {
    this.#init = init;
  }

  /**
   * Hands a create to the name's arbiter, saying which peer the client asked (`origin`), and relays
   * its answer (201, 409 ERR_NAME_TAKEN, ...). Throws ERR_OWNER_UNREACHABLE, with nothing sent to
   * the client, when the arbiter cannot be reached or does not acknowledge within 5 s: the caller
   * then asks the next arbiter, and this one drops the request once its deadline passes.
   */
  arbitrateCreate(arbiter: PeerTarget, call: PeerCall, origin: Origin): Promise<void> {
    const headers = this.#sign('arbiter', call.req, { origin, deadline: Date.now() + ARBITER_ANSWER_MS });
    return relayRequest(call.req, call.res, arbiter, headers, { agent: this.#agent, link: this.#init.link, body: call.body, answerWithinMs: ARBITER_ANSWER_MS });
  }

  /**
   * Asks `peer` to create the sprite itself, skipping arbitration, and relays its answer. True when
   * it created the sprite (201). Throws ERR_OWNER_UNREACHABLE, with nothing sent to the client, when
   * the peer cannot be reached.
   */
  async placeCreate(peer: PeerTarget, call: PeerCall): Promise<boolean> {
    await relayRequest(call.req, call.res, peer, this.#sign('place', call.req), { agent: this.#agent, link: this.#init.link, body: call.body });
    return call.res.statusCode === 201;
  }

  /**
   * Hands a request to the peer that serves it (a sprite's owner, a peer asked to drain), which
   * serves it where it lands, and relays the answer. Throws ERR_OWNER_UNREACHABLE, with nothing
   * sent to the client, when the peer cannot be reached.
   */
  forward(peer: PeerTarget, req: IncomingMessage, res: ServerResponse): Promise<void> {
    return relayRequest(req, res, peer, this.#sign('owner', req), { agent: this.#agent, link: this.#init.link });
  }

  /**
   * Hands a WebSocket upgrade to the sprite's owner and splices the sockets once it agrees; a
   * refusal is relayed as plain HTTP. Throws ERR_OWNER_UNREACHABLE when the owner cannot be reached.
   */
  forwardUpgrade(peer: PeerTarget, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    return relayUpgrade(req, socket, head, peer, this.#sign('owner', req), this.#init.link);
  }

  /**
   * Asks `peer` to take a sprite over from this draining peer (claim its record, restore its disk
   * from the store, start it when `start`). A call between peers: no token, the link and the
   * signed hop say who asks. Throws with the peer's answer when it does not take the sprite.
   */
  async adopt(peer: PeerTarget, name: string, start: boolean): Promise<void> {
    const path = `/v1/sprites/${encodeURIComponent(name)}/adopt`;
    const body = JSON.stringify({ start });
    const url = new URL(path, peer.link);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(url, {
        ...this.#init.link.client(peer.peer), method: 'POST', agent: this.#agent, timeout: ADOPT_ANSWER_MS,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...this.#init.hops.headers('adopt', 'POST', path) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.once('error', reject);
      });
      req.once('timeout', () => req.destroy(new Error(`no answer within ${ADOPT_ANSWER_MS} ms`)));
      req.once('error', reject);
      req.end(body);
    });
    if (status !== 200) throw new Error(`peer ${peer.peer} answered ${status}: ${text}`);
  }

  /** Closes the idle connections to other peers (peer shutdown). */
  close(): void {
    this.#agent.destroy();
  }

  #sign(role: 'owner' | 'place' | 'arbiter', req: IncomingMessage, arbiter?: { origin: Origin; deadline: number }): Record<string, string> {
    return this.#init.hops.headers(role, req.method ?? 'GET', requestPath(req.url), arbiter);
  }
}

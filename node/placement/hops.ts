import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The wire format of requests one peer hands to another: the headers both ends read and write.
 * Nothing else in the project names them, so how a hop is marked and authenticated changes here
 * alone.
 *
 * A hop travels only over a peer link (mutual TLS, node/links/), and its header is signed: an
 * HMAC (key derived from the swarm key) over the role, the sending peer, the method, the path with
 * its query, the arbiter's origin and deadline, and an expiry a few seconds ahead. The receiver
 * honours it only when the link's client certificate names that same peer, a member of the mesh.
 * On the public API listener hop headers are stripped: a client's request is a client's request.
 */
const HOP_HEADER = 'x-sprite-hop';

/** On a create handed to the name's arbiter: `PEER;warm|none`, the peer the client asked and whether its pool had a warm sprite. */
const ORIGIN_HEADER = 'x-sprite-origin';

/** On a create handed to an arbiter: wall-clock ms after which the sender has passed it over. */
const DEADLINE_HEADER = 'x-sprite-deadline';

/** Every header of the hop wire: stripped from what clients send. */
const HOP_HEADERS = [HOP_HEADER, ORIGIN_HEADER, DEADLINE_HEADER] as const;

/** A signed hop is good for this long after it was sent (peers' clocks must agree this closely). */
export const HOP_TTL_MS = 10_000;

/**
 * What the receiving peer is asked to do: serve a sprite it owns, decide a new name, create here,
 * or take over a sprite a draining peer hands it.
 */
export type HopRole = 'owner' | 'arbiter' | 'place' | 'adopt';

const ROLES: ReadonlySet<string> = new Set<HopRole>(['owner', 'arbiter', 'place', 'adopt']);

/** The peer a client asked for a create, and whether its pool had a warm sprite then. */
export interface Origin {
  peer: string;
  warm: boolean;
}

/** A request from another peer, as the receiver reads it once its signature checked out. */
export type Hop =
  | { role: 'owner' | 'place' | 'adopt'; peer: string }
  | {
    role: 'arbiter';
    peer: string;
    /** Undefined when the header is missing or malformed: the arbiter then places as for its own client. */
    origin: Origin | undefined;
    /** Wall-clock ms; NaN when missing, which never passes. */
    deadline: number;
  };

/** Hops that reached this peer and checked out, by request. */
const verified = new WeakMap<IncomingMessage, Hop>();

/** Signs hops this peer sends and checks those it receives, with a key every peer of the mesh derives from the swarm key. */
export class HopKeys {
  readonly #secret: Buffer;
  readonly #peerId: string;

  constructor(secret: Buffer, peerId: string) {
    this.#secret = secret;
    this.#peerId = peerId;
  }

  /** The headers that mark a hop with `role` for `method` on `path` (with its query). */
  headers(role: HopRole, method: string, path: string, arbiter?: { origin: Origin; deadline: number }): Record<string, string> {
    const expiry = Date.now() + HOP_TTL_MS;
    const out: Record<string, string> = {};
    if (arbiter) {
      out[ORIGIN_HEADER] = `${arbiter.origin.peer};${arbiter.origin.warm ? 'warm' : 'none'}`;
      out[DEADLINE_HEADER] = String(arbiter.deadline);
    }
    const mac = this.#mac(role, this.#peerId, method, path, expiry, out[ORIGIN_HEADER] ?? '', out[DEADLINE_HEADER] ?? '');
    out[HOP_HEADER] = `${role} ${this.#peerId} ${expiry} ${mac.toString('hex')}`;
    return out;
  }

  /**
   * Reads the hop of a request as it arrives: on the public listener (`linkPeer` undefined) every
   * hop header is removed, so nothing later takes it for a peer's; on a peer link the hop must be
   * signed by the peer the client certificate names, for this method and path, and not expired.
   * Returns false when a link request's hop does not check out (the caller refuses it). Either
   * way the hop headers are gone from the request afterwards: a request handed on carries only
   * the hop its sender signs anew.
   */
  admit(req: IncomingMessage, linkPeer: string | undefined): boolean {
    const headers = req.headers;
    const value = headers[HOP_HEADER];
    const origin = typeof headers[ORIGIN_HEADER] === 'string' ? headers[ORIGIN_HEADER] : '';
    const deadline = typeof headers[DEADLINE_HEADER] === 'string' ? headers[DEADLINE_HEADER] : '';
    for (const name of HOP_HEADERS) delete headers[name];
    if (linkPeer === undefined) return true;
    if (typeof value !== 'string' || value.length > 300) return false;
    const [role, peer, expiryText, macHex, extra] = value.split(' ');
    if (!role || !ROLES.has(role) || peer !== linkPeer || extra !== undefined || !/^\d{1,15}$/.test(expiryText ?? '') || !/^[0-9a-f]{64}$/.test(macHex ?? '')) return false;
    const expiry = Number(expiryText);
    const now = Date.now();
    if (expiry < now || expiry > now + 6 * HOP_TTL_MS) return false;
    const expected = this.#mac(role as HopRole, peer, req.method ?? '', req.url ?? '', expiry, origin, deadline);
    if (!timingSafeEqual(expected, Buffer.from(macHex!, 'hex'))) return false;
    verified.set(req, role === 'arbiter'
      ? { role, peer, origin: parseOrigin(origin), deadline: Number(deadline || NaN) }
      : { role: role as 'owner' | 'place' | 'adopt', peer });
    return true;
  }

  #mac(role: HopRole, peer: string, method: string, path: string, expiry: number, origin: string, deadline: string): Buffer {
    return createHmac('sha256', this.#secret).update(`sprite-api-hop\n${role}\n${peer}\n${method}\n${path}\n${expiry}\n${origin}\n${deadline}`).digest();
  }
}

/** The verified hop a request arrived with, or undefined when it came from a client. */
export function readHop(req: IncomingMessage): Hop | undefined {
  return verified.get(req);
}

/** True when the request was handed over by another peer: it is served here and never forwarded again. */
export function fromPeer(req: IncomingMessage): boolean {
  return verified.has(req);
}

/**
 * The arbiter's side of the handshake: acknowledges with 102 Processing so the sender waits for the
 * (possibly slow) create, and returns true. A request whose deadline has passed went to the next
 * arbiter meanwhile: its connection is dropped unanswered and false returned, since acting on it now
 * could create a name that was meanwhile created and destroyed.
 */
export function acceptArbitration(hop: Hop & { role: 'arbiter' }, req: IncomingMessage, res: ServerResponse): boolean {
  if (Date.now() > hop.deadline) {
    req.socket.destroy();
    return false;
  }
  res.writeProcessing();
  return true;
}

function parseOrigin(value: string): Origin | undefined {
  const match = /^([^;]{1,128});(warm|none)$/.exec(value);
  return match ? { peer: match[1]!, warm: match[2] === 'warm' } : undefined;
}

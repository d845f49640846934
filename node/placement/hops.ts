import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The wire format of requests one peer hands to another: the headers both ends read and write.
 * Nothing else in the project names them, so how a hop is marked (and one day authenticated)
 * changes here alone. Peers of different versions talk to each other: values and meanings stay.
 */

/**
 * Marks a request one peer hands to another, with what the receiver is asked to do. The receiver
 * serves it itself and never forwards it again, so a stale view of who owns a sprite costs an
 * error, not a loop. It grants nothing: the receiver authenticates the caller's own Authorization
 * header, which travels unchanged.
 */
const HOP_HEADER = 'x-sprite-hop';

/** On a create handed to the name's arbiter: `PEER;warm|none`, the peer the client asked and whether its pool had a warm sprite. */
const ORIGIN_HEADER = 'x-sprite-origin';

/** On a create handed to an arbiter: wall-clock ms after which the sender has passed it over. */
const DEADLINE_HEADER = 'x-sprite-deadline';

/** What the receiving peer is asked to do: serve a sprite it owns, decide a new name, or create here. */
export type HopRole = 'owner' | 'arbiter' | 'place';

/** The peer a client asked for a create, and whether its pool had a warm sprite then. */
export interface Origin {
  peer: string;
  warm: boolean;
}

/** A request from another peer, as the receiver reads it. */
export type Hop =
  | { role: 'owner' | 'place' }
  | {
    role: 'arbiter';
    /** Undefined when the header is missing or malformed: the arbiter then places as for its own client. */
    origin: Origin | undefined;
    /** Wall-clock ms; NaN when missing, which never passes. */
    deadline: number;
  };

/** The hop a request arrived with, or undefined when it came from a client. */
export function readHop(req: IncomingMessage): Hop | undefined {
  const role = req.headers[HOP_HEADER];
  if (role === 'owner' || role === 'place') return { role };
  if (role !== 'arbiter') return undefined;
  return { role, origin: parseOrigin(req.headers[ORIGIN_HEADER]), deadline: Number(req.headers[DEADLINE_HEADER]) };
}

/** True when the request was handed over by another peer: it is served here and never forwarded again. */
export function fromPeer(req: IncomingMessage): boolean {
  return readHop(req) !== undefined;
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

/** The headers that mark a hop with `role`. */
export function hopHeaders(role: HopRole): Record<string, string> {
  return { [HOP_HEADER]: role };
}

/** The headers of a create handed to an arbiter: who was asked, and when the sender stops waiting. */
export function arbiterHeaders(origin: Origin, deadline: number): Record<string, string> {
  return { [ORIGIN_HEADER]: `${origin.peer};${origin.warm ? 'warm' : 'none'}`, [DEADLINE_HEADER]: String(deadline), ...hopHeaders('arbiter') };
}

function parseOrigin(value: string | string[] | undefined): Origin | undefined {
  const match = typeof value === 'string' ? /^([^;]{1,128});(warm|none)$/.exec(value) : null;
  return match ? { peer: match[1]!, warm: match[2] === 'warm' } : undefined;
}

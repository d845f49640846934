import { chmod } from 'node:fs/promises';
import net from 'node:net';
import { VmError } from './errors.ts';
import { decodeMessage, messageFrame, readOneFrame } from './frames.ts';
import type { CheckpointInfo } from './volume.ts';

/**
 * Requests that sprite-init sends the peer on behalf of code inside the sprite. sprite-init cannot
 * take a checkpoint itself: the disk belongs to the peer's storage daemon. Each sandbox gets its
 * own socket (`run/peer.sock`, outside anything the container sees), so a request names no sprite:
 * the socket it arrives on is the sprite, and a sprite can only reach its own disk. Framing is that
 * of the control socket (one cbor request frame, one cbor reply frame per connection).
 *
 * Everything in a request comes from inside the sprite and is untrusted: the peer validates it,
 * runs one request per sandbox at a time with a short bounded queue, and rate-limits checkpoints.
 */
export type SpriteRequest =
  | { op: 'checkpoints.create'; comment: string }
  | { op: 'checkpoints.list' };

/** A checkpoint as the inside of a sprite sees it. */
export interface InsideCheckpoint {
  id: string;
  comment: string;
  /** ms since the epoch */
  created: number;
}

/** What the peer does for one sandbox's requests. */
export interface SpriteRequestHandler {
  /** Checkpoints this sandbox's sprite; ERR_SPRITE_NOT_RUNNING when it has no name yet or is stopping. */
  createCheckpoint(comment: string): Promise<CheckpointInfo>;
  /** This sandbox's sprite's checkpoints, oldest first. */
  listCheckpoints(): Promise<CheckpointInfo[]>;
}

/** Bounds on what one sandbox may ask. */
export interface SpriteRequestLimits {
  /** Longest checkpoint comment, in characters (the API's limit). @default 1024 */
  maxComment: number;
  /** Checkpoints a sprite may take in a burst. @default 10 */
  burst: number;
  /** One more checkpoint becomes available this often. @default 60000 */
  refillMs: number;
  /** Requests waiting behind the running one; more are refused. @default 4 */
  maxQueued: number;
  /** A connection must send its request within this time. @default 10000 */
  readTimeoutMs: number;
}

/** Documented defaults of {@link SpriteRequestLimits}. */
export const SPRITE_REQUEST_DEFAULTS: SpriteRequestLimits = { maxComment: 1024, burst: 10, refillMs: 60_000, maxQueued: 4, readTimeoutMs: 10_000 };

/** Codes whose message may go back into the sprite; anything else becomes a generic ERR_INTERNAL. */
const PASSED_CODES = new Set(['ERR_BAD_REQUEST', 'ERR_RATE_LIMITED', 'ERR_SPRITE_NOT_RUNNING', 'ERR_CHECKPOINT_NOT_FOUND']);

/** Validates one request from a sandbox; throws ERR_BAD_REQUEST. */
export function parseSpriteRequest(value: unknown, limits: Pick<SpriteRequestLimits, 'maxComment'> = SPRITE_REQUEST_DEFAULTS): SpriteRequest {
  const request = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const unknownKeys = Object.keys(request).filter((key) => key !== 'op' && key !== 'comment');
  if (unknownKeys.length > 0) throw new VmError('ERR_BAD_REQUEST', `unknown field ${unknownKeys[0]}`);
  if (request.op === 'checkpoints.list') {
    if (request.comment !== undefined) throw new VmError('ERR_BAD_REQUEST', 'checkpoints.list takes no comment');
    return { op: 'checkpoints.list' };
  }
  if (request.op !== 'checkpoints.create') throw new VmError('ERR_BAD_REQUEST', `unknown op ${String(request.op).slice(0, 64)}`);
  const comment = request.comment ?? '';
  if (typeof comment !== 'string') throw new VmError('ERR_BAD_REQUEST', 'comment must be a string');
  if (comment.length > limits.maxComment) throw new VmError('ERR_BAD_REQUEST', `comment is longer than ${limits.maxComment} characters`);
  // Comments end up in terminal tables; control characters would garble them.
  if (/[\u0000-\u001f\u007f]/.test(comment)) throw new VmError('ERR_BAD_REQUEST', 'comment must not contain control characters');
  return { op: 'checkpoints.create', comment };
}

/** A token bucket: `burst` tokens, one more every `refillMs`. */
export class TokenBucket {
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(burst: number, refillMs: number, now: () => number = Date.now) {
    this.#burst = burst;
    this.#refillMs = refillMs;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  /** Takes a token if there is one. */
  take(): boolean {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) / this.#refillMs);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Serves one sandbox's requests on `path` until closed. Requests run one at a time in arrival
 * order; at most `maxQueued` wait, the rest are refused with ERR_RATE_LIMITED, as are checkpoints
 * beyond the token bucket. `onError` hears about failures whose details stay outside the sprite.
 */
export async function serveSpriteRequests(
  path: string,
  handler: SpriteRequestHandler,
  options: { limits?: Partial<SpriteRequestLimits>; onError?: (request: SpriteRequest, error: unknown) => void } = {},
): Promise<net.Server> {
  const limits: SpriteRequestLimits = { ...SPRITE_REQUEST_DEFAULTS, ...options.limits };
  const bucket = new TokenBucket(limits.burst, limits.refillMs);
  let tail: Promise<unknown> = Promise.resolve();
  let waiting = 0;

  const run = async (request: SpriteRequest): Promise<unknown> => {
    if (request.op === 'checkpoints.list') return (await handler.listCheckpoints()).map(inside);
    if (!bucket.take()) throw new VmError('ERR_RATE_LIMITED', `too many checkpoints: at most ${limits.burst} at once, then one every ${limits.refillMs / 1000} s`);
    return inside(await handler.createCheckpoint(request.comment));
  };

  const enqueue = (request: SpriteRequest): Promise<unknown> => {
    if (waiting >= limits.maxQueued + 1) return Promise.reject(new VmError('ERR_RATE_LIMITED', 'too many requests at once; try again shortly'));
    waiting += 1;
    const job = tail.then(() => run(request)).finally(() => { waiting -= 1; });
    tail = job.catch(() => undefined);
    return job;
  };

  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.setTimeout(limits.readTimeoutMs, () => socket.destroy());
    void readOneFrame(socket)
      .then(async (payload) => {
        socket.setTimeout(0);
        const request = parseSpriteRequest(decodeMessage(payload), limits);
        try {
          return { ok: true, result: await enqueue(request) };
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'string' && PASSED_CODES.has(code)) throw error;
          options.onError?.(request, error);
          throw new VmError('ERR_INTERNAL', `${request.op} failed on the peer; its log has the details`);
        }
      })
      .catch((error: unknown) => {
        const code = (error as { code?: unknown }).code;
        return { ok: false, error: { code: typeof code === 'string' && code.startsWith('ERR_') ? code : 'ERR_BAD_REQUEST', message: (error as Error).message } };
      })
      .then((reply) => { if (!socket.destroyed) socket.end(messageFrame(reply)); });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  // Only sprite-init (root) connects.
  await chmod(path, 0o600);
  return server;
}

function inside(checkpoint: CheckpointInfo): InsideCheckpoint {
  return { id: checkpoint.id, comment: checkpoint.comment, created: checkpoint.created };
}

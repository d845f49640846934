import { PROXY_ERROR_CODES } from '../proxy/index.ts';

/**
 * Every error the API can answer with: a stable code, the HTTP status the API answers it with, and
 * when it happens. docs/ERRORS.md lists the same codes; a test keeps the two together.
 */
export const ERROR_CODES = {
  ERR_BAD_REQUEST: { status: 400, when: 'the body, query or path is malformed or fails validation' },
  ERR_BAD_NAME: { status: 400, when: 'a sprite name breaks the DNS-label rule' },
  ERR_IMAGE_SOURCE: { status: 400, when: 'an image source cannot be used: a missing directory, an unreadable tarball, debootstrap not installed or failing' },
  ERR_UNAUTHORIZED: { status: 401, when: 'the bearer token is missing or wrong' },
  ERR_FORBIDDEN: { status: 403, when: 'the route takes an admin token (orgs, tokens, image builds and deletes, peers, drain, pool, mesh health, adopt) and the caller\'s is not, or the target is a peer\'s own token' },
  ERR_NOT_FOUND: { status: 404, when: 'no such route' },
  ERR_SPRITE_NOT_FOUND: { status: 404, when: 'no sprite has that name' },
  ERR_SERVICE_NOT_FOUND: { status: 404, when: 'the sprite has no service of that name' },
  ERR_CHECKPOINT_NOT_FOUND: { status: 404, when: 'the sprite has no checkpoint with that id' },
  ERR_IMAGE_NOT_FOUND: { status: 404, when: 'no base image has that name' },
  ERR_SESSION_NOT_FOUND: { status: 404, when: 'the sprite has no exec session with that id' },
  ERR_ORG_NOT_FOUND: { status: 404, when: 'no org has that name' },
  ERR_TOKEN_NOT_FOUND: { status: 404, when: 'no token has that name' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, when: 'the route exists but not with that method' },
  ERR_NAME_TAKEN: { status: 409, when: 'a sprite with that name exists' },
  ERR_ORG_EXISTS: { status: 409, when: 'an org with that name exists' },
  ERR_TOKEN_EXISTS: { status: 409, when: 'a token with that name exists (names of revoked tokens stay taken)' },
  ERR_IMAGE_EXISTS: { status: 409, when: 'a base image with that name exists or is being built' },
  ERR_HTTP_PORT_TAKEN: { status: 409, when: 'another service already owns the sprite\'s HTTP port' },
  ERR_SERVICE_IN_USE: { status: 409, when: 'another service needs the service being deleted' },
  ERR_SERVICE_NOT_RUNNING: { status: 409, when: 'the service is not running (stop, signal)' },
  ERR_MEMORY_IN_USE: { status: 409, when: 'the sprite uses more memory than the new limit and could not give it back' },
  ERR_SPRITE_NOT_RUNNING: { status: 409, when: 'the operation needs a running sprite' },
  ERR_SPRITE_ELSEWHERE: { status: 409, when: 'the sprite runs on another peer; the message names it and its API' },
  ERR_BODY_TOO_LARGE: { status: 413, when: 'the request body is over 1 MiB' },
  ERR_IMAGE_TOO_LARGE: { status: 413, when: 'the files of an image source pass the peer\'s image size limit' },
  // Sprites' own code, so its SDKs' isConcurrentLimitExceeded() knows it.
  concurrent_sprite_limit_exceeded: { status: 429, when: 'no peer that could take a new sprite has room under its `--capacity` (and `wait_for_capacity` was false, or its wait ran out); the body adds `retry_after_seconds`, `current_count` and `limit`, the `Retry-After` header the seconds' },
  ERR_QUOTA_EXCEEDED: { status: 429, when: 'the org is at one of its quotas (sprites, running sprites, checkpoints, stored bytes; see API.md#quotas); the body adds `quota` (which one), `current_count`, `limit` and `retry_after_seconds`, the `Retry-After` header the seconds' },
  ERR_POOL_EMPTY: { status: 503, when: 'the warm pool is empty and the pool fallback is `fail`' },
  ERR_PEER_DRAINING: { status: 503, when: 'the peer is draining and takes no new sprites' },
  ERR_PEER_STOPPING: { status: 503, when: 'the peer is stopping: it starts, wakes and changes no sprite any more' },
  ERR_OWNER_UNREACHABLE: { status: 503, when: 'the sprite\'s peer is in the mesh but did not answer a request handed to it' },
  ERR_SPRITE_UNRECOVERABLE: { status: 503, when: 'the sprite\'s peer is down and this peer cannot take it over (its disk lease is still held, or its disk is in another store)' },
  ERR_SPRITE_UNAVAILABLE: { status: 503, when: 'the sprite\'s sprite-init cannot be reached' },
  ERR_FS_AGENT: { status: 502, when: 'the sprite\'s file agent did not start, or answered something malformed (it runs inside the sprite, which can replace it)' },
  ERR_SANDBOX_START: { status: 500, when: 'a sandbox failed to start' },
  ERR_COMMAND: { status: 500, when: 'a system command (mount, runc, ...) failed' },
  ERR_EGRESS: { status: 500, when: 'a sandbox\'s network could not be set up: no address left in the peer\'s egress range, or its veth or firewall chain failed (see docs/NETWORKING.md)' },
  ERR_INIT: { status: 500, when: 'sprite-init failed a request' },
  ERR_INTERNAL: { status: 500, when: 'anything else; the peer log has the details' },
  // The edge proxy's answers on sprite URLs; the API uses some of them too (url auth, the CA).
  ...PROXY_ERROR_CODES,
} as const satisfies Record<string, { status: number; when: string }>;

/** One of the documented error codes. */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * An error of the peer's parts (sprites, placement, records, images, the API's own checks) with a
 * stable code. Domain code knows nothing of HTTP: node/api/errors.ts maps codes to statuses.
 */
export class PeerError extends Error {
  readonly code: ErrorCode;
  /** Fields the API answer carries besides `error` and `message` (snake_case, as on the wire). */
  readonly details: Readonly<Record<string, number | string>> | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, number | string> }) {
    super(message, options);
    this.name = 'PeerError';
    this.code = code;
    this.details = options?.details;
  }
}

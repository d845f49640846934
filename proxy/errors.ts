/**
 * Every error the edge proxy answers with: a stable code, its HTTP status, and when it happens.
 * node/errors.ts includes these in the API's list and docs/ERRORS.md documents them; a test keeps
 * the three together.
 */
export const PROXY_ERROR_CODES = {
  ERR_PROXY_BAD_REQUEST: { status: 400, when: 'the proxy could not parse the request (malformed request line or headers)' },
  ERR_PROXY_BAD_HOST: { status: 400, when: 'the Host header is missing, malformed, or not exactly one label under the proxy\'s domain' },
  ERR_PROXY_BAD_HOP: { status: 400, when: 'a request carries a peer-to-peer hop header that no peer of this mesh signed' },
  ERR_PROXY_UNAUTHORIZED: { status: 401, when: 'the sprite\'s URL auth is `sprite` and the request has no valid token of the sprite\'s org or an admin token (bearer or login cookie)' },
  ERR_PROXY_SPRITE_NOT_FOUND: { status: 404, when: 'no sprite in the mesh has the name in the Host header' },
  ERR_PROXY_NO_CA: { status: 404, when: 'this peer serves a certificate from files, so there is no mesh CA to print' },
  ERR_PROXY_REQUEST_TIMEOUT: { status: 408, when: 'the client did not send its request headers in time' },
  ERR_PROXY_QUOTA: { status: 429, when: 'the sprite was asleep cold or stopped and waking it would pass its org\'s running quota (docs/API.md#quotas); Retry-After says when to retry' },
  ERR_PROXY_HEADERS_TOO_LARGE: { status: 431, when: 'the request headers are over the proxy\'s limit (16 KiB by default)' },
  ERR_PROXY_UPSTREAM: { status: 502, when: 'the sprite or the owner peer closed or reset the connection before answering (often: nothing listens on the sprite\'s port 8080)' },
  ERR_PROXY_SPRITE_FAILED: { status: 503, when: 'the sprite has failed; `sprite start NAME` restarts it' },
  ERR_PROXY_OWNER_DOWN: { status: 503, when: 'the peer that runs the sprite is down, unreachable, or has no proxy' },
  ERR_PROXY_WAKE_FAILED: { status: 503, when: 'the sprite was stopped and starting it failed' },
  ERR_PROXY_WAKE_TIMEOUT: { status: 503, when: 'the sprite was stopped and did not wake within the wait limit (10 s by default); Retry-After says when to retry' },
  ERR_PROXY_BUSY: { status: 503, when: 'too many requests wait for sleeping sprites (per sprite or on this peer); Retry-After says when to retry' },
  ERR_PROXY_UPSTREAM_TIMEOUT: { status: 504, when: 'the sprite or the owner peer sent nothing for longer than the upstream idle timeout' },
  ERR_PROXY_LOOP: { status: 508, when: 'a request forwarded by another peer arrived at a peer that does not run the sprite (the peers disagree on its owner)' },
} as const satisfies Record<string, { status: number; when: string }>;

/** One of the proxy's error codes. */
export type ProxyErrorCode = keyof typeof PROXY_ERROR_CODES;

/** An error the proxy answers as a small page with its code's status and a reason. */
export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  /** Seconds for a Retry-After header, when retrying later can help. */
  readonly retryAfter: number | undefined;

  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(message, options);
    this.name = 'ProxyError';
    this.code = code;
    this.retryAfter = options?.retryAfter;
  }

  /** The HTTP status of this error's code. */
  get status(): number {
    return PROXY_ERROR_CODES[this.code].status;
  }
}

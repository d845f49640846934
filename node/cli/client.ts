// HTTP and WebSocket client for the peer's /v1 API, mapping failures to one-line CliErrors.
import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import { ApiError, CliError } from './errors.ts';

/** Query parameters; a key may repeat (`cmd=ls&cmd=-l`). */
export type Query = ReadonlyArray<readonly [string, string]>;

/** Options of createClient. */
export interface ClientInit {
  /** Base URL of the API, e.g. `http://127.0.0.1:7070`. */
  api: string;
  /** Bearer token; undefined sends no Authorization header. */
  token: string | undefined;
  /** Token file named in the hint when the peer refuses a missing token. */
  tokenPath?: string;
  /**
   * How long a JSON request may take before it fails.
   * @default 120000
   */
  timeoutMs?: number;
}

/** A client of one peer's API. */
export interface Client {
  /** Base URL of the API. */
  readonly api: string;
  /** Sends a JSON request; resolves to the parsed answer, or undefined for an empty (204) answer. */
  json<T>(method: string, path: string, body?: unknown): Promise<T | undefined>;
  /**
   * Sends a GET (a POST of `body` as JSON when given) and resolves to the response body stream
   * once the status is known to be 2xx.
   */
  stream(path: string, query?: Query, body?: unknown): Promise<ReadableStream<Uint8Array>>;
  /** Sends `method` with a raw body (sent as JSON) and resolves to the response body stream once 2xx. */
  raw(method: string, path: string, body?: string, query?: Query): Promise<ReadableStream<Uint8Array>>;
  /**
   * Opens a WebSocket to an API path; resolves once open, rejects with a CliError otherwise.
   * The socket comes back paused: attach 'message' listeners, then call resume(), or early frames
   * (a session id, fast output) would be emitted before anyone listens.
   */
  socket(path: string, query?: Query): Promise<WebSocket>;
}

const DEFAULT_TIMEOUT_MS = 120_000;
/** Largest error body read from a refused WebSocket upgrade. */
const MAX_ERROR_BODY = 64 * 1024;

/** Encodes one path segment (sprite, service or session name). */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

/** Builds the URL of an API path; `ws` turns http(s) into ws(s) for WebSocket upgrades. */
export function apiUrl(api: string, path: string, query: Query = [], ws = false): string {
  const url = new URL(api + path);
  for (const [key, value] of query) url.searchParams.append(key, value);
  if (ws) url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/** Creates a client for the peer at `init.api`. */
export function createClient(init: ClientInit): Client {
  const { api, token } = init;
  const timeoutMs = init.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };

  const fail = (status: number, statusText: string, body: string): ApiError => {
    const err = apiError(status, statusText, body);
    if (status === 401 && token === undefined) {
      const where = init.tokenPath === undefined ? 'SPRITE_TOKEN' : `SPRITE_TOKEN or ${init.tokenPath}`;
      return new ApiError(status, err.code, `${err.message} (no token found in ${where})`);
    }
    return err;
  };

  const send = async (method: string, url: string, extra: RequestInit): Promise<Response> => {
    try {
      return await fetch(url, { method, ...extra, headers: { ...headers, ...(extra.headers as Record<string, string>) } });
    } catch (err) {
      throw fetchError(err);
    }
  };

  const fetchError = (err: unknown): CliError => {
    if ((err as Error | undefined)?.name === 'TimeoutError') {
      return new CliError('ERR_TIMEOUT', `the peer at ${api} did not answer within ${timeoutMs / 1000} s`);
    }
    return networkError(api, err);
  };

  return {
    api,

    async json<T>(method: string, path: string, body?: unknown): Promise<T | undefined> {
      const res = await send(method, apiUrl(api, path), {
        signal: AbortSignal.timeout(timeoutMs),
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      });
      const text = await res.text().catch((err: unknown) => {
        throw fetchError(err);
      });
      if (!res.ok) throw fail(res.status, res.statusText, text);
      if (text === '') return undefined;
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new CliError('ERR_BAD_ANSWER', `the peer answered ${method} ${path} with invalid JSON`);
      }
    },

    stream(path: string, query: Query = [], body?: unknown): Promise<ReadableStream<Uint8Array>> {
      return this.raw(body === undefined ? 'GET' : 'POST', path, body === undefined ? undefined : JSON.stringify(body), query);
    },

    async raw(method: string, path: string, body?: string, query: Query = []): Promise<ReadableStream<Uint8Array>> {
      const res = await send(method, apiUrl(api, path, query), body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } });
      if (!res.ok) throw fail(res.status, res.statusText, await res.text().catch(() => ''));
      return res.body ?? new ReadableStream({ start: (c) => c.close() });
    },

    socket(path: string, query: Query = []): Promise<WebSocket> {
      const ws = new WebSocket(apiUrl(api, path, query, true), { headers, perMessageDeflate: false });
      // Errors after the promise settled still need a listener, or ws would throw them.
      ws.on('error', () => {});
      return new Promise((resolve, reject) => {
        ws.once('open', () => {
          ws.pause();
          resolve(ws);
        });
        ws.once('error', (err) => reject(networkError(api, err)));
        ws.once('unexpected-response', (req, res: IncomingMessage) => {
          readBounded(res, MAX_ERROR_BODY).then((body) => {
            reject(fail(res.statusCode ?? 0, res.statusMessage ?? '', body));
            req.destroy();
          });
        });
      });
    },
  };
}

/** Turns a non-2xx answer into an ApiError, using the API's `{error: code, message}` when present. */
export function apiError(status: number, statusText: string, body: string): ApiError {
  try {
    const { error: code, message, retry_after_seconds: retry } = JSON.parse(body) as { error?: unknown; message?: unknown; retry_after_seconds?: unknown };
    if (typeof message === 'string' && message !== '') {
      // A 429 says when to try again; the CLI's one line says it too.
      const after = typeof retry === 'number' && Number.isInteger(retry) && retry > 0 ? ` (retry after ${retry} s)` : '';
      return new ApiError(status, typeof code === 'string' ? code : 'ERR_API', `${message}${after}`);
    }
  } catch {
    // Not JSON: fall through to a message built from the status line.
  }
  return new ApiError(status, 'ERR_API', `the peer answered ${status}${statusText ? ` ${statusText}` : ''}`);
}

/** Turns a network failure (fetch or ws) into a CliError naming the peer. */
export function networkError(api: string, err: unknown): CliError {
  const code = errorCode(err);
  if (code === 'ECONNREFUSED') {
    return new CliError('ERR_PEER_UNREACHABLE', `cannot reach the peer at ${api} (is 'sprite peer start' running?)`, { cause: err });
  }
  const detail = code ?? innermostMessage(err);
  return new CliError('ERR_PEER_UNREACHABLE', `cannot reach the peer at ${api}: ${detail}`, { cause: err });
}

/** Finds an errno-style code on an error, its cause, or an AggregateError's members. */
function errorCode(err: unknown, depth = 0): string | undefined {
  if (depth > 4 || typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && !e.code.startsWith('UND_ERR') && e.code !== 'ERR_INVALID_STATE') return e.code;
  if (Array.isArray(e.errors)) {
    const codes = e.errors.map((inner) => errorCode(inner, depth + 1));
    // Dual-stack connects fail once per address; refused everywhere still means refused.
    if (codes.length > 0 && codes.every((c) => c === 'ECONNREFUSED')) return 'ECONNREFUSED';
    if (codes[0] !== undefined) return codes[0];
  }
  return errorCode(e.cause, depth + 1) ?? (typeof e.code === 'string' ? e.code : undefined);
}

/** The message of the deepest `cause` of an error. */
function innermostMessage(err: unknown): string {
  let current = err as { message?: unknown; cause?: unknown } | undefined;
  for (let i = 0; i < 5 && current?.cause !== undefined && current.cause !== null; i++) {
    current = current.cause as typeof current;
  }
  return typeof current?.message === 'string' ? current.message : String(err);
}

/** Reads at most `limit` bytes of a response body as text. */
async function readBounded(res: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res) {
      const buf = chunk as Buffer;
      chunks.push(buf.subarray(0, limit - size));
      size += buf.length;
      if (size >= limit) break;
    }
  } catch {
    // A broken error body still leaves the status line to report.
  }
  return Buffer.concat(chunks).toString('utf8');
}

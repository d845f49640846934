import http from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_CODES, PeerError, type ErrorCode } from '../errors.ts';

/**
 * An error as the API answers it: `{error: code, message}` with its code's HTTP status. The code
 * sits in `error` as a string because that is where Sprites' SDKs read it (`parseAPIError`).
 */
export class ApiError extends PeerError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, number | string> }) {
    super(code, message, options);
    this.name = 'ApiError';
  }

  /** The HTTP status of this error's code. */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/**
 * The one mapping of anything thrown to what the API answers: a known code (from node/, vm/ or
 * sprite-init, matched by `code`, not by class) keeps its status; anything else is ERR_INTERNAL.
 */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const code = (error as { code?: unknown })?.code;
  const message = error instanceof Error ? error.message : String(error);
  const details = error instanceof PeerError && error.details ? { ...error.details } : undefined;
  if (typeof code === 'string' && code in ERROR_CODES) return new ApiError(code as ErrorCode, message, { cause: error, details });
  return new ApiError('ERR_INTERNAL', message, { cause: error });
}

/** The JSON body of an error answer, also the error line of an NDJSON stream: the code, the message and any details. */
export function errorJson(error: ApiError): { error: string; message: string } {
  return { ...error.details, error: error.code, message: error.message };
}

/** Headers an error answer carries: `Retry-After` when the error says when to try again. */
export function errorHeaders(error: ApiError): Record<string, string> {
  const seconds = error.details?.retry_after_seconds;
  return typeof seconds === 'number' ? { 'retry-after': String(seconds) } : {};
}

function errorBody(error: ApiError): string {
  return JSON.stringify(errorJson(error));
}

/** Answers a WebSocket upgrade that cannot go ahead as plain HTTP, with the same body as any other route. */
export function refuseUpgrade(socket: Duplex, error: ApiError): void {
  const body = errorBody(error);
  socket.end(`HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

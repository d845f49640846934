import type { IncomingMessage, ServerResponse } from 'node:http';
import { PeerError } from '../errors.ts';
import { errorJson, toApiError } from './errors.ts';
import { validate, type Schema } from '../schema.ts';

const MAX_BODY = 1024 * 1024;

/** Writes a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Writes `{error: code, message}` with the code's status; a response already under way is cut instead. */
export function sendError(res: ServerResponse, error: unknown): void {
  const apiError = toApiError(error);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, apiError.status, errorJson(apiError));
}

/** A boolean query parameter: `1` or `true`. */
export function flag(url: URL, name: string): boolean {
  const value = url.searchParams.get(name);
  return value === '1' || value === 'true';
}

/** Reads, parses and validates a JSON body against `schema`; bad input becomes a 4xx PeerError. */
export async function readJson<T>(req: IncomingMessage, schema: Schema): Promise<T> {
  return parseJson<T>(await readBody(req), schema);
}

/** Reads a request body of at most 1 MiB. */
export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new PeerError('ERR_BODY_TOO_LARGE', 'request body is over 1 MiB');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * Parses and validates a JSON body; any content type is read as JSON (curl -d sends form encoding).
 * `prepare` may normalize the parsed value before validation.
 */
export function parseJson<T>(body: Buffer, schema: Schema, prepare: (value: unknown) => unknown = (value) => value): T {
  let value: unknown;
  try {
    // An empty body is an empty object: required fields are still enforced by the schema.
    value = JSON.parse(body.toString('utf8') || '{}');
  } catch {
    throw new PeerError('ERR_BAD_REQUEST', 'body is not valid JSON');
  }
  value = prepare(value);
  const problem = validate(schema, value);
  if (problem) throw new PeerError('ERR_BAD_REQUEST', problem);
  return value as T;
}

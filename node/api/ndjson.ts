import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { PeerError } from '../errors.ts';

const UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;

/**
 * A duration query parameter as Sprites' SDKs send it (Go syntax: `5s`, `1m30s`, `250ms`; a bare
 * number is seconds), in ms: `fallbackMs` when absent, ERR_BAD_REQUEST when malformed or over `maxMs`.
 */
export function durationParam(url: URL, name: string, fallbackMs: number, maxMs: number): number {
  const text = url.searchParams.get(name);
  if (text === null || text === '') return fallbackMs;
  let ms: number;
  if (/^\d+(?:\.\d+)?$/.test(text)) ms = Number(text) * 1000;
  else if (DURATION.test(text)) {
    ms = 0;
    for (const [, value, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(value) * UNITS_MS[unit!]!;
  } else throw new PeerError('ERR_BAD_REQUEST', `${name} must be a duration such as 5s, 500ms or 2m`);
  if (ms > maxMs) throw new PeerError('ERR_BAD_REQUEST', `${name} must be at most ${maxMs / 1000}s`);
  return Math.round(ms);
}

/** A non-negative integer query parameter: `fallback` when absent, ERR_BAD_REQUEST when malformed or over `max`. */
export function countParam(url: URL, name: string, fallback: number, max: number): number {
  const text = url.searchParams.get(name);
  if (text === null || text === '') return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > max) throw new PeerError('ERR_BAD_REQUEST', `${name} must be an integer from 0 to ${max}`);
  return value;
}

/** Starts an NDJSON answer; returns the writer of its lines. */
export function startNdjson(res: ServerResponse): (line: object) => void {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  return (line) => void res.write(`${JSON.stringify(line)}\n`);
}

/**
 * Answers with the NDJSON lines sprite-init writes on `stream` (it writes whole JSON lines and
 * ends the stream itself); a client that leaves ends it early.
 */
export async function relayNdjson(res: ServerResponse, stream: Socket): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  const gone = (): void => void stream.destroy();
  res.once('close', gone);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (!res.write(chunk)) await drained(res);
    }
  } catch {
    // sprite-init went away mid-stream (the sprite stopped): say so, as the SDK reads events.
    if (!res.destroyed) res.write(`${JSON.stringify({ type: 'error', data: 'the sprite stopped while the stream was open', timestamp: Date.now() })}\n`);
  } finally {
    res.off('close', gone);
    res.end();
  }
}

/** Resolves once `res` takes writes again, or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

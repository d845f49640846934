// Reading the API's NDJSON streams: service events (output and lifecycle) and checkpoint progress.
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { ReadableStream as WebStream } from 'node:stream/web';
import type { Io } from './exec.ts';
import { ApiError, CliError } from './errors.ts';

/** The JSON objects of an NDJSON response body, one per line; a broken stream is ERR_STREAM_BROKEN. */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>): AsyncGenerator<Record<string, unknown>> {
  const lines = createInterface({ input: Readable.fromWeb(body as WebStream<Uint8Array>) });
  try {
    for await (const text of lines) {
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new CliError('ERR_BAD_ANSWER', 'the peer sent a line that is not JSON');
      }
      if (typeof value === 'object' && value !== null) yield value as Record<string, unknown>;
    }
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('ERR_STREAM_BROKEN', `the stream from the peer broke off: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Shows a service event stream: output to stdout and stderr as it came, lifecycle events
 * (`started`, `exit`, `stopping`, `stopped`) as bracketed lines on stderr.
 */
export async function showServiceEvents(io: Io, body: ReadableStream<Uint8Array>, options: { lifecycle: boolean }): Promise<void> {
  for await (const event of ndjsonLines(body)) {
    const data = typeof event.data === 'string' ? event.data : '';
    if (event.type === 'stdout') io.stdout.write(data);
    else if (event.type === 'stderr') io.stderr.write(data);
    else if (event.type === 'error') throw new CliError('ERR_SERVICE', data || 'the service stream failed');
    else if (options.lifecycle && event.type !== 'complete') {
      const detail = event.type === 'exit' ? ` ${String(event.exit_code)}` : data ? ` ${data}` : '';
      io.stderr.write(`[${String(event.type)}${detail}]\n`);
    }
  }
}

/**
 * Follows a checkpoint or restore progress stream: `info` lines go to stderr; an `error` line fails
 * the command with its reason. Resolves with the last `info` line (which carries the result).
 */
export async function followProgress(io: Io, body: ReadableStream<Uint8Array>): Promise<Record<string, unknown> | undefined> {
  let last: Record<string, unknown> | undefined;
  for await (const message of ndjsonLines(body)) {
    if (message.type === 'error') throw new ApiError(200, String(message.code ?? 'ERR_INTERNAL'), String(message.error ?? 'the operation failed'));
    if (typeof message.data === 'string') io.stderr.write(`${message.data}\n`);
    last = message;
  }
  return last;
}

// The shape of one CLI command and the context it runs in.
import type { ArgsSpec, ParsedArgs } from './args.ts';
import type { Client } from './client.ts';
import { CliError } from './errors.ts';
import type { Io } from './exec.ts';

/** What a running command may use. */
export interface Context {
  /** The parsed flags and arguments. */
  readonly args: ParsedArgs;
  /** Positional arguments, already checked against the command's required and optional names. */
  readonly positionals: readonly string[];
  /** Local streams. */
  readonly io: Io;
  /** The process environment. */
  readonly env: NodeJS.ProcessEnv;
  /** The API client, created on first use (reading SPRITE_API and the token then). */
  client(): Client;
}

/** One command of the `sprite` CLI. */
export interface Command {
  /** Words that select it: `['services', 'create']`. */
  readonly words: readonly string[];
  /** Arguments and flags as shown in usage, after the words. */
  readonly usage: string;
  /** One-line description. */
  readonly summary: string;
  /** More lines that help about this command shows after its usage (the flags of `peer start`). */
  readonly details?: () => readonly string[];
  /** Accepted flags and whether a trailing command line follows. */
  readonly spec: ArgsSpec;
  /** Names of required positionals, in order (`NAME`, `SVC`). */
  readonly required: readonly string[];
  /** Names of optional positionals after the required ones. */
  readonly optional?: readonly string[];
  /** Whether the trailing command line (after `--`) must be present. */
  readonly needsCommand?: boolean;
  /** Long-running in the foreground with its own lifecycle: the CLI does not force an exit after it. */
  readonly keepAlive?: boolean;
  /** Runs the command and resolves to its exit status. */
  run(ctx: Context): Promise<number>;
}

/** The `--json` flag shared by read commands. */
export const JSON_FLAG = Object.freeze({ json: { kind: 'boolean' } as const });

/** Writes text to stdout, waiting while the stream is backed up. */
export async function print(io: Io, text: string | Uint8Array): Promise<void> {
  if (io.stdout.write(text)) return;
  await new Promise<void>((resolve) => io.stdout.once('drain', resolve));
}

/** Copies a byte stream (a streamed response body) to stdout as chunks arrive. */
export async function pump(io: Io, body: ReadableStream<Uint8Array>): Promise<void> {
  try {
    for await (const chunk of body) await print(io, chunk);
  } catch (err) {
    const cause = (err as { cause?: { message?: unknown } }).cause?.message;
    const detail = typeof cause === 'string' ? cause : (err as Error).message;
    throw new CliError('ERR_STREAM_BROKEN', `the stream from the peer broke off: ${detail}`, { cause: err });
  }
}

/** The path of a sprite: `/v1/sprites/{name}` with the name encoded. */
export function spritePath(name: string): string {
  return `/v1/sprites/${encodeURIComponent(name)}`;
}

/** Positional argument `i`; main has checked it exists, so a miss is a programming error. */
export function arg(ctx: Context, i: number): string {
  const value = ctx.positionals[i];
  if (value === undefined) throw new Error(`internal: missing positional ${i}`);
  return value;
}

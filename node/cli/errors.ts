// Error types the CLI turns into one `sprite: <message>` line and an exit status.

/** A mistake in the command line (unknown command or flag, missing argument); exits with status 2. */
export class UsageError extends Error {
  /** Stable error name callers check instead of `instanceof`. */
  override readonly name = 'UsageError';
  /** Stable error code. */
  readonly code = 'ERR_USAGE';
  /** Process exit status for this error. */
  readonly exitCode = 2;
}

/** A runtime failure (API error, unreachable peer, lost connection); exits with status 1. */
export class CliError extends Error {
  /** Stable error name callers check instead of `instanceof`. */
  override readonly name: string = 'CliError';
  /** Stable error code: the API's code when the peer answered with one. */
  readonly code: string;
  /** Process exit status for this error. */
  readonly exitCode = 1;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** An error answer from the peer's HTTP API (`{"error": {"code", "message"}}`). */
export class ApiError extends CliError {
  override readonly name = 'ApiError';
  /** HTTP status of the answer. */
  readonly status: number;

  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

/** Exit status and one-line message for anything thrown while running a command. */
export function describeError(err: unknown): { exitCode: number; message: string } {
  const e = err as { name?: unknown; message?: unknown; exitCode?: unknown } | null | undefined;
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err);
  const exitCode = typeof e?.exitCode === 'number' ? e.exitCode : 1;
  // The contract is exactly one line on stderr, whatever the message holds.
  return { exitCode, message: message.replace(/\s*\n\s*/g, ' ').trim() };
}

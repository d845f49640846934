/** An error from the sprite machine with a stable code that the API maps to a status. */
export class VmError extends Error {
  /** Stable machine-readable code, e.g. `ERR_SANDBOX_START`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VmError';
    this.code = code;
  }
}

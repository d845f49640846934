/** Structured logger the storage layer writes to; the peer's logger (node/logger.ts) has this shape. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
}

/** A logger writing one JSON object per line through `write` (stderr by default). */
export function jsonLogger(fields: Record<string, unknown> = {}, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const log = (level: string) => (message: string, extra?: Record<string, unknown>) => {
    write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...fields, ...extra })}\n`);
  };
  return { info: log('info'), warn: log('warn'), error: log('error'), child: (more) => jsonLogger({ ...fields, ...more }, write) };
}

/** A logger that drops everything. */
export function silentLogger(): Logger {
  return jsonLogger({}, () => undefined);
}

/** A logger that keeps lines in memory, for tests that assert on log output. */
export function memoryLogger(): Logger & { lines: Array<{ level: string; message: string } & Record<string, unknown>> } {
  const lines: Array<{ level: string; message: string } & Record<string, unknown>> = [];
  const make = (fields: Record<string, unknown>): Logger => {
    const log = (level: string) => (message: string, extra?: Record<string, unknown>) => { lines.push({ level, message, ...fields, ...extra }); };
    return { info: log('info'), warn: log('warn'), error: log('error'), child: (more) => make({ ...fields, ...more }) };
  };
  return Object.assign(make({}), { lines });
}

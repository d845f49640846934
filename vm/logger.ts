/**
 * The project's one logger: structured lines, one JSON object each, with fields bound per
 * component. It lives in vm/ because every unit may import vm/ and vm/ runs processes of its own
 * (the storage daemon); gossip/ and proxy/ take a logger of this shape as a component.
 */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
}

/** A logger writing one JSON object per line through `write` (stderr by default). */
export function createLogger(fields: Record<string, unknown> = {}, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  return fieldLogger(fields, (level, message, extra) => {
    write(`${JSON.stringify({ time: new Date().toISOString(), level, message, ...extra })}\n`);
  });
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return fieldLogger({}, () => undefined);
}

/** A logger that keeps lines in memory, for tests that assert on log output. */
export function memoryLogger(): Logger & { lines: Array<{ level: string; message: string } & Record<string, unknown>> } {
  const lines: Array<{ level: string; message: string } & Record<string, unknown>> = [];
  return Object.assign(fieldLogger({}, (level, message, extra) => void lines.push({ level, message, ...extra })), { lines });
}

/** Binds `fields` (and children's fields) in front of each line's own before `emit` sees it. */
function fieldLogger(fields: Record<string, unknown>, emit: (level: string, message: string, fields: Record<string, unknown>) => void): Logger {
  const log = (level: string) => (message: string, extra?: Record<string, unknown>) => emit(level, message, { ...fields, ...extra });
  return { info: log('info'), warn: log('warn'), error: log('error'), child: (more) => fieldLogger({ ...fields, ...more }, emit) };
}

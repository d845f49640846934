import { PeerError } from '../errors.ts';
import { signalName } from '../../vm/index.ts';

/** An exec as sprite-init takes it (`op: 'exec'`), read from the query the SDK sends. */
export interface ExecRequest {
  command: string[];
  env: Record<string, string>;
  dir?: string;
  tty: boolean;
  cols: number;
  rows: number;
  stdin: boolean;
  detachable: boolean;
  maxRunAfterDisconnectMs: number | null;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
// setTimeout's limit: a longer grace would fire at once.
const MAX_DURATION_MS = 2 ** 31 - 1;

/**
 * Reads `cmd` (repeated), `path`, `env` (repeated K=V), `dir`, `tty`, `rows`, `cols`, `stdin`,
 * `detachable` and `max_run_after_disconnect`; anything malformed is ERR_BAD_REQUEST. `path`
 * names the program when it differs from the first `cmd` (which it then replaces as argv[0]).
 * Over HTTP there is no terminal, so `tty` is refused there.
 */
export function parseExecQuery(url: URL, transport: 'ws' | 'http'): ExecRequest {
  const query = url.searchParams;
  const cmd = query.getAll('cmd');
  const path = query.get('path');
  if (cmd.length === 0 && !path) throw bad('exec needs at least one cmd parameter');
  const command = path && path !== cmd[0] ? [path, ...cmd.slice(1)] : cmd;
  if (command.some((arg) => arg.includes('\0'))) throw bad('cmd and path must not contain NUL');
  const env: Record<string, string> = {};
  for (const pair of query.getAll('env')) {
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    if (eq < 1 || !ENV_NAME.test(name) || pair.includes('\0')) throw bad(`env must be NAME=VALUE with a name of letters, digits and _, got ${JSON.stringify(pair)}`);
    env[name] = pair.slice(eq + 1);
  }
  const dir = query.get('dir') ?? undefined;
  if (dir !== undefined && (!dir.startsWith('/') || dir.includes('\0'))) throw bad('dir must be an absolute path');
  const tty = bool(query, 'tty', false);
  if (tty && transport === 'http') throw bad('tty needs the exec WebSocket');
  if (bool(query, 'cc', false)) throw bad('control mode (cc) is not supported');
  const max = query.get('max_run_after_disconnect');
  return {
    command, env, dir, tty,
    cols: size(query, 'cols', 80),
    rows: size(query, 'rows', 24),
    stdin: bool(query, 'stdin', tty),
    detachable: bool(query, 'detachable', false),
    maxRunAfterDisconnectMs: max === null ? null : duration(max, 'max_run_after_disconnect'),
  };
}

/** The `signal` and `timeout` of a kill: SIGTERM and 10 s unless given. */
export function parseKillQuery(url: URL): { signal: string; timeoutMs: number } {
  const given = url.searchParams.get('signal');
  const signal = given === null ? 'TERM' : signalName(given);
  if (!signal) throw bad(`unknown signal ${JSON.stringify(given)}`);
  const timeout = url.searchParams.get('timeout');
  const timeoutMs = timeout === null ? 10_000 : duration(timeout, 'timeout');
  if (timeoutMs > 3_600_000) throw bad('timeout must be at most 1h');
  return { signal, timeoutMs };
}

/** A Go-style duration (`500ms`, `30s`, `1m30s`, `2h`, `0`) in whole milliseconds, rounded up. */
export function duration(text: string, name: string): number {
  if (text === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) throw bad(`${name} must be a duration such as 30s, 500ms or 1m30s`);
  let ms = 0;
  for (const [, value, , unit] of text.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(value) * units[unit!]!;
  if (ms > MAX_DURATION_MS) throw bad(`${name} must be at most ${MAX_DURATION_MS} ms`);
  return Math.ceil(ms);
}

function bool(query: URLSearchParams, name: string, fallback: boolean): boolean {
  const value = query.get(name);
  if (value === null) return fallback;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw bad(`${name} must be true or false`);
}

function size(query: URLSearchParams, name: string, fallback: number): number {
  const value = Number(query.get(name) ?? fallback);
  if (!Number.isInteger(value) || value < 1 || value > 1000) throw bad(`${name} must be 1-1000`);
  return value;
}

function bad(message: string): PeerError {
  return new PeerError('ERR_BAD_REQUEST', message);
}

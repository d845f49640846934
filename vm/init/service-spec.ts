import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { coded } from './errors.ts';

/** A service definition as sprite-init keeps it (services.json, mirrored into the sprite's record). */
export interface ServiceSpec {
  name: string;
  cmd: string;
  args: string[];
  env: Record<string, string>;
  dir: string;
  /** Services that must be running before this one starts. */
  needs: string[];
  /** The sprite's HTTP port is served by this service; at most one service may claim it. */
  httpPort?: number;
}

/** What a service is doing, as Sprites names it. */
export type ServiceStatus = 'stopped' | 'starting' | 'running' | 'stopping' | 'failed';

/** A service's live state on the wire (snake_case, as Sprites' SDKs read it). */
export interface ServiceStateWire {
  name: string;
  status: ServiceStatus;
  pid?: number;
  started_at?: string;
  error?: string;
  restart_count: number;
  next_restart_at?: string;
}

/** A service and its state on the wire. */
export interface ServiceWire extends Omit<ServiceSpec, 'httpPort'> {
  http_port: number | null;
  state: ServiceStateWire;
}

const SERVICE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Bounds that keep one definition (and the mirrored file) small. */
const MAX_NEEDS = 64;
const MAX_ARGS = 1024;
const MAX_ENV = 256;

/**
 * Validates an untrusted service definition: from the API, from inside the sprite, or read back
 * from services.json (which another peer may have written from the mirrored record). The port is
 * `http_port` on the wire; `httpPort` is what files from before the wire change hold.
 */
export function parseServiceSpec(value: unknown): ServiceSpec {
  const fail = (message: string): never => {
    throw coded('ERR_BAD_REQUEST', message);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('service spec must be an object');
  const spec = value as Record<string, unknown>;
  if (typeof spec.name !== 'string' || !SERVICE_NAME.test(spec.name)) return fail('service name must be 1-63 of a-z, 0-9, _ and -');
  if (typeof spec.cmd !== 'string' || spec.cmd.length === 0) return fail('cmd must be a non-empty string');
  const args = spec.args ?? [];
  if (!Array.isArray(args) || args.length > MAX_ARGS || !args.every((a) => typeof a === 'string')) return fail(`args must be an array of at most ${MAX_ARGS} strings`);
  const env = spec.env ?? {};
  if (typeof env !== 'object' || env === null || Array.isArray(env) || Object.keys(env).length > MAX_ENV || !Object.values(env).every((v) => typeof v === 'string')) {
    return fail(`env must map at most ${MAX_ENV} names to strings`);
  }
  if (Object.keys(env).some((key) => key.length === 0 || key.includes('=') || key.includes('\0'))) return fail('env names must be non-empty, without = or NUL');
  const dir = spec.dir ?? '/';
  if (typeof dir !== 'string' || !dir.startsWith('/')) return fail('dir must be an absolute path');
  const needs = spec.needs ?? [];
  if (!Array.isArray(needs) || needs.length > MAX_NEEDS || !needs.every((n) => typeof n === 'string' && SERVICE_NAME.test(n))) {
    return fail(`needs must be an array of at most ${MAX_NEEDS} service names`);
  }
  const port = spec.http_port ?? spec.httpPort ?? undefined;
  if (port !== undefined && (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)) return fail('http_port must be a port number');
  const parsed: ServiceSpec = { name: spec.name, cmd: spec.cmd, args: args as string[], env: env as Record<string, string>, dir, needs: [...new Set(needs as string[])] };
  if (port !== undefined) parsed.httpPort = port as number;
  return parsed;
}

/**
 * Throws ERR_BAD_REQUEST when `spec`, added to (or replacing its namesake in) `specs`, needs a
 * service that does not exist or closes a cycle of needs.
 */
export function checkNeeds(specs: ReadonlyMap<string, ServiceSpec>, spec: ServiceSpec): void {
  const all = new Map(specs);
  all.set(spec.name, spec);
  for (const need of spec.needs) {
    if (!all.has(need)) throw coded('ERR_BAD_REQUEST', `service ${spec.name} needs ${need}, which does not exist`);
  }
  // A walk from the new spec along needs: coming back to it is a cycle (others were checked when they came).
  const path: string[] = [];
  const cleared = new Set<string>();
  const visit = (name: string): void => {
    if (cleared.has(name)) return;
    if (path.includes(name)) {
      throw coded('ERR_BAD_REQUEST', `needs form a cycle: ${[...path.slice(path.indexOf(name)), name].join(' -> ')}`);
    }
    path.push(name);
    for (const need of all.get(name)?.needs ?? []) visit(need);
    path.pop();
    cleared.add(name);
  };
  visit(spec.name);
}

/** Names of the services in `specs` that need `name`. */
export function neededBy(specs: Iterable<ServiceSpec>, name: string): string[] {
  return [...specs].filter((spec) => spec.needs.includes(name)).map((spec) => spec.name);
}

/** Signals a service may be sent: names with or without `SIG` (`TERM`, `SIGHUP`), as Sprites takes them. */
const SIGNALS = new Set(['HUP', 'INT', 'QUIT', 'KILL', 'USR1', 'USR2', 'TERM', 'CONT', 'STOP', 'TSTP', 'WINCH', 'ALRM']);

/** The Node name (`SIGTERM`) of a signal a user named; throws ERR_BAD_REQUEST for anything else. */
export function parseSignal(value: unknown): NodeJS.Signals {
  const bare = typeof value === 'string' ? value.toUpperCase().replace(/^SIG/, '') : '';
  if (!SIGNALS.has(bare)) throw coded('ERR_BAD_REQUEST', `signal must be one of ${[...SIGNALS].join(', ')} (with or without SIG)`);
  return `SIG${bare}` as NodeJS.Signals;
}

/**
 * The definitions saved in `file` (at most `max`). The file may come from another peer (the
 * mirrored record), so each one is checked; a bad one is logged and left out.
 */
export function loadSpecs(file: string, max: number, log: (line: string) => void): ServiceSpec[] {
  let saved: unknown;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
  const specs = new Map<string, ServiceSpec>();
  for (const value of Array.isArray(saved) ? saved : []) {
    try {
      const spec = parseServiceSpec(value);
      if (!specs.has(spec.name) && specs.size < max) specs.set(spec.name, spec);
    } catch (error) {
      log(`ignoring a saved service: ${(error as Error).message}`);
    }
  }
  return [...specs.values()];
}

/** Saves definitions atomically (a rename, which the mirror into the record watches for). */
export function saveSpecs(file: string, specs: ServiceSpec[]): void {
  const partial = `${file}.partial`;
  writeFileSync(partial, JSON.stringify(specs, null, 2));
  renameSync(partial, file);
}

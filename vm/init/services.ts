import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { coded } from './errors.ts';
import type { Runc } from './runc.ts';
import { ServiceLog, lineSplitter } from './service-log.ts';
import { checkNeeds, loadSpecs, neededBy, saveSpecs, type ServiceSpec, type ServiceStateWire, type ServiceStatus, type ServiceWire } from './service-spec.ts';

export type { ServiceSpec, ServiceStatus, ServiceWire } from './service-spec.ts';

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
// A service that stayed up this long is healthy again: its next crash restarts quickly.
const BACKOFF_RESET_AFTER_MS = 60_000;
/** How long a stop waits after SIGTERM before SIGKILL, unless the caller says. */
export const STOP_TIMEOUT_MS = 10_000;
/** Definitions a sprite may have: they are mirrored into its replicated record. */
const MAX_SERVICES = 64;
/** Where a service's log file is, as code inside the sprite sees it. */
export const INSIDE_LOG_DIR = '/.sprite/logs/services';

interface Entry {
  spec: ServiceSpec;
  /** The `runc exec` process that runs it. */
  child: ChildProcess | undefined;
  /** Resolves once `child` is gone. */
  exited: Promise<void> | undefined;
  status: ServiceStatus;
  /** The service's pid in sprite-init's pid namespace (signals go there), and inside the sprite (shown). */
  hostPid: number | undefined;
  pid: number | undefined;
  restarts: number;
  started: number | undefined;
  error: string | undefined;
  nextRestart: number | undefined;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  /** False once a user stopped it: it stays stopped until started (or the sprite starts again). */
  wanted: boolean;
}

/**
 * Supervises the sprite's services: starts them with runc exec once the services they need run,
 * restarts them on exit with backoff, keeps their output (a file per service and a ring of recent
 * lines with live listeners), stops and signals them.
 */
export class ServiceManager {
  readonly #runc: Runc;
  readonly #file: string;
  readonly #logDir: string;
  readonly #pidDir: string;
  readonly #log: (line: string) => void;
  readonly #services = new Map<string, Entry>();
  readonly #logs = new Map<string, ServiceLog>();
  /** Changes run one at a time: a replaced service must be gone before its successor starts. */
  #serial: Promise<unknown> = Promise.resolve();
  #active = false;

  /** `file` persists the definitions; `logDir` receives `<name>.log`; `pidDir` runc's pid files; `log` gets lifecycle events. */
  constructor(runc: Runc, file: string, logDir: string, pidDir: string, log: (line: string) => void) {
    this.#runc = runc;
    this.#file = file;
    this.#logDir = logDir;
    this.#pidDir = pidDir;
    this.#log = log;
    mkdirSync(logDir, { recursive: true });
    mkdirSync(pidDir, { recursive: true });
    for (const spec of loadSpecs(file, MAX_SERVICES, log)) this.#services.set(spec.name, this.#entry(spec));
  }

  /** Fills each service's recent output from its log file (what ran before this sprite-init). */
  async seedLogs(): Promise<void> {
    await Promise.all([...this.#services.keys()].map((name) => this.#logOf(name).seed(this.logPath(name))));
  }

  /** Starts every defined service in the order their needs give; called once the container runs. */
  activate(): void {
    this.#active = true;
    this.#scheduleAll();
  }

  /** Services by name, with their state. */
  list(): ServiceWire[] {
    return [...this.#services.values()].map((entry) => this.#wire(entry)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** One service; throws ERR_SERVICE_NOT_FOUND. */
  get(name: string): ServiceWire {
    return this.#wire(this.#require(name));
  }

  /** The port the sprite's HTTP traffic goes to: the claiming service's, if one claims it. */
  httpPort(): number | undefined {
    return [...this.#services.values()].find((entry) => entry.spec.httpPort !== undefined)?.spec.httpPort;
  }

  /**
   * Creates or replaces a service and starts it (and what it needs). Throws ERR_HTTP_PORT_TAKEN if
   * another service owns the HTTP port, ERR_BAD_REQUEST for a need that does not exist or a cycle.
   */
  put(spec: ServiceSpec): Promise<ServiceWire> {
    return this.#serially(async () => {
      if (!this.#services.has(spec.name) && this.#services.size >= MAX_SERVICES) throw coded('ERR_BAD_REQUEST', `a sprite has at most ${MAX_SERVICES} services`);
      if (spec.httpPort !== undefined) {
        const owner = [...this.#services.values()].find((s) => s.spec.name !== spec.name && s.spec.httpPort !== undefined);
        if (owner) throw coded('ERR_HTTP_PORT_TAKEN', `service ${owner.spec.name} already owns the HTTP port`);
      }
      checkNeeds(new Map([...this.#services].map(([name, entry]) => [name, entry.spec])), spec);
      const previous = this.#services.get(spec.name);
      if (previous) await this.#stop(previous, STOP_TIMEOUT_MS);
      const entry = this.#entry(spec);
      this.#services.set(spec.name, entry);
      saveSpecs(this.#file, [...this.#services.values()].map((e) => e.spec));
      this.#want(entry);
      this.#scheduleAll();
      return this.#wire(entry);
    });
  }

  /** Stops and removes a service; throws ERR_SERVICE_NOT_FOUND, or ERR_SERVICE_IN_USE while another service needs it. */
  remove(name: string): Promise<void> {
    return this.#serially(async () => {
      const entry = this.#require(name);
      const users = neededBy([...this.#services.values()].map((e) => e.spec), name);
      if (users.length > 0) throw coded('ERR_SERVICE_IN_USE', `service ${users.join(', ')} needs ${name}; change or delete it first`);
      this.#services.delete(name);
      saveSpecs(this.#file, [...this.#services.values()].map((e) => e.spec));
      await this.#stop(entry, STOP_TIMEOUT_MS);
      this.#logs.delete(name);
    });
  }

  /** Starts a service and, first, the services it needs (a running one is left alone); throws ERR_SERVICE_NOT_FOUND. */
  start(name: string): Promise<void> {
    return this.#serially(async () => {
      const entry = this.#require(name);
      // A crashed service waiting for its backoff starts now.
      if (!entry.child && entry.timer) {
        clearTimeout(entry.timer);
        entry.timer = undefined;
      }
      this.#want(entry);
      this.#scheduleAll();
    });
  }

  /** Stops a service: SIGTERM, SIGKILL after `timeoutMs`. Throws ERR_SERVICE_NOT_FOUND, or ERR_SERVICE_NOT_RUNNING. */
  stop(name: string, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    return this.#serially(async () => {
      const entry = this.#require(name);
      if (!entry.child && !entry.timer && entry.status !== 'starting') throw coded('ERR_SERVICE_NOT_RUNNING', `service ${name} is ${entry.status}`);
      await this.#stop(entry, timeoutMs);
    });
  }

  /** Stops a service if it runs, then starts it; throws ERR_SERVICE_NOT_FOUND. */
  restart(name: string, timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    return this.#serially(async () => {
      const entry = this.#require(name);
      await this.#stop(entry, timeoutMs);
      this.#want(entry);
      this.#scheduleAll();
    });
  }

  /** Sends a signal to a service's process; throws ERR_SERVICE_NOT_FOUND, or ERR_SERVICE_NOT_RUNNING. */
  signal(name: string, signal: NodeJS.Signals): void {
    const entry = this.#require(name);
    if (!entry.child) throw coded('ERR_SERVICE_NOT_RUNNING', `service ${name} is ${entry.status}`);
    this.#kill(entry, signal);
  }

  /** Host path of a service's log file; throws ERR_SERVICE_NOT_FOUND. */
  logPath(name: string): string {
    this.#require(name);
    return join(this.#logDir, `${name}.log`);
  }

  /** A service's recent output and live events; throws ERR_SERVICE_NOT_FOUND. */
  events(name: string): ServiceLog {
    this.#require(name);
    return this.#logOf(name);
  }

  /** Stops every service (the definitions stay). */
  async stopAll(): Promise<void> {
    this.#active = false;
    await Promise.all([...this.#services.values()].map((entry) => this.#stop(entry, 5000)));
  }

  #serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(work, work);
    this.#serial = run.catch(() => undefined);
    return run;
  }

  #entry(spec: ServiceSpec): Entry {
    return {
      spec, child: undefined, exited: undefined, status: 'stopped', hostPid: undefined, pid: undefined, restarts: 0, started: undefined,
      error: undefined, nextRestart: undefined, backoffMs: BACKOFF_FIRST_MS, timer: undefined, wanted: true,
    };
  }

  #logOf(name: string): ServiceLog {
    let log = this.#logs.get(name);
    if (!log) this.#logs.set(name, (log = new ServiceLog()));
    return log;
  }

  /** Marks a service and everything it needs (transitively) to run. */
  #want(entry: Entry, seen = new Set<string>()): void {
    if (seen.has(entry.spec.name)) return;
    seen.add(entry.spec.name);
    entry.wanted = true;
    for (const need of entry.spec.needs) {
      const needed = this.#services.get(need);
      if (needed) this.#want(needed, seen);
    }
  }

  /** Starts every wanted service whose needs run; the others wait (`starting`) until they do. */
  #scheduleAll(): void {
    if (!this.#active) return;
    for (const entry of this.#services.values()) {
      if (!entry.wanted || entry.child || entry.timer) continue;
      const missing = entry.spec.needs.filter((need) => !this.#services.has(need));
      if (missing.length > 0) {
        entry.status = 'failed';
        entry.error = `needs ${missing.join(', ')}, which does not exist`;
      } else if (entry.spec.needs.some((need) => this.#services.get(need)!.status !== 'running')) {
        entry.status = 'starting';
      } else {
        this.#launch(entry);
      }
    }
  }

  #launch(entry: Entry): void {
    const { spec } = entry;
    const pidFile = join(this.#pidDir, `${spec.name}.pid`);
    rmSync(pidFile, { force: true });
    const command = this.#runc.execCommand({ command: [spec.cmd, ...spec.args], env: spec.env, dir: spec.dir, pidFile });
    const child = spawn(command.file, command.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    Object.assign(entry, { child, status: 'starting', started: Date.now(), nextRestart: undefined, hostPid: undefined, pid: undefined });
    const events = this.#logOf(spec.name);
    const file = createWriteStream(join(this.#logDir, `${spec.name}.log`), { flags: 'a' });
    file.on('error', () => undefined);
    for (const [stream, type] of [[child.stdout!, 'stdout'], [child.stderr!, 'stderr']] as const) {
      const lines = lineSplitter((data) => events.push({ type, data, timestamp: Date.now() }));
      stream.on('data', (chunk: Buffer) => {
        file.write(chunk);
        lines.write(chunk);
      });
      stream.once('end', () => lines.end());
    }
    entry.exited = new Promise((resolve) => {
      let done = false;
      const exited = (code: number | null, signal: NodeJS.Signals | null, error?: Error): void => {
        if (done) return;
        done = true;
        file.end();
        this.#exited(entry, child, code, signal, error);
        resolve();
      };
      child.once('error', (error) => exited(null, null, error));
      child.once('close', (code, signal) => exited(code, signal));
    });
    void this.#watchPid(entry, child, pidFile);
  }

  /** Waits for runc's pid file: the service runs once its process exists. */
  async #watchPid(entry: Entry, child: ChildProcess, pidFile: string): Promise<void> {
    for (let attempt = 0; attempt < 500 && entry.child === child; attempt++) {
      const hostPid = Number.parseInt(await readFile(pidFile, 'utf8').catch(() => ''), 10);
      if (hostPid > 0) {
        if (entry.child !== child || entry.status !== 'starting') return;
        entry.hostPid = hostPid;
        entry.pid = (await innerPid(hostPid)) ?? hostPid;
        if (entry.child !== child || entry.status !== 'starting') return;
        entry.status = 'running';
        entry.error = undefined;
        this.#log(`service ${entry.spec.name} started (pid ${entry.pid})`);
        this.#logOf(entry.spec.name).push({ type: 'started', data: `pid ${entry.pid}`, timestamp: Date.now() });
        this.#scheduleAll();
        return;
      }
      await sleep(10);
    }
  }

  #exited(entry: Entry, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, error: Error | undefined): void {
    if (entry.child !== child) return;
    Object.assign(entry, { child: undefined, hostPid: undefined, pid: undefined });
    const status = code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1);
    const { name } = entry.spec;
    this.#log(`service ${name} exited (${error?.message ?? signal ?? code})`);
    this.#logOf(name).push({ type: 'exit', exit_code: status, timestamp: Date.now() });
    if (!entry.wanted || !this.#active || this.#services.get(name) !== entry) {
      entry.status = 'stopped';
      return;
    }
    const upFor = Date.now() - (entry.started ?? 0);
    if (upFor >= BACKOFF_RESET_AFTER_MS) entry.backoffMs = BACKOFF_FIRST_MS;
    entry.status = 'failed';
    entry.error = error ? error.message : `exited with status ${status}`;
    entry.restarts += 1;
    entry.nextRestart = Date.now() + entry.backoffMs;
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.#scheduleAll();
    }, entry.backoffMs);
    entry.backoffMs = Math.min(entry.backoffMs * 2, BACKOFF_MAX_MS);
  }

  async #stop(entry: Entry, timeoutMs: number): Promise<void> {
    entry.wanted = false;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.nextRestart = undefined;
    if (!entry.child) {
      entry.status = 'stopped';
      return;
    }
    const events = this.#logOf(entry.spec.name);
    entry.status = 'stopping';
    events.push({ type: 'stopping', timestamp: Date.now() });
    this.#kill(entry, 'SIGTERM');
    const timer = setTimeout(() => this.#kill(entry, 'SIGKILL'), timeoutMs);
    await entry.exited;
    clearTimeout(timer);
    entry.status = 'stopped';
    events.push({ type: 'stopped', timestamp: Date.now() });
  }

  /**
   * Signals the service's own process once its pid is known; before that, runc (which forwards
   * catchable signals). SIGKILL to runc alone would leave the process running, so it goes to both.
   */
  #kill(entry: Entry, signal: NodeJS.Signals): void {
    if (entry.hostPid !== undefined) {
      try {
        process.kill(entry.hostPid, signal);
        return;
      } catch {
        // Gone already: runc's exit follows.
      }
    }
    entry.child?.kill(signal);
  }

  #require(name: string): Entry {
    const entry = this.#services.get(name);
    if (!entry) throw coded('ERR_SERVICE_NOT_FOUND', `no service named ${name}`);
    return entry;
  }

  #wire(entry: Entry): ServiceWire {
    const { spec } = entry;
    const state: ServiceStateWire = { name: spec.name, status: entry.status, restart_count: entry.restarts };
    if (entry.pid !== undefined) state.pid = entry.pid;
    if (entry.child && entry.started !== undefined) state.started_at = new Date(entry.started).toISOString();
    if (entry.error !== undefined) state.error = entry.error;
    if (entry.nextRestart !== undefined) state.next_restart_at = new Date(entry.nextRestart).toISOString();
    return { name: spec.name, cmd: spec.cmd, args: spec.args, env: spec.env, dir: spec.dir, needs: spec.needs, http_port: spec.httpPort ?? null, state };
  }
}

/** A process's pid in the innermost pid namespace it is in (the sprite's view), from /proc. */
async function innerPid(hostPid: number): Promise<number | undefined> {
  const status = await readFile(`/proc/${hostPid}/status`, 'utf8').catch(() => '');
  const line = /^NSpid:\s+(.+)$/m.exec(status)?.[1];
  const pid = Number(line?.trim().split(/\s+/).at(-1));
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

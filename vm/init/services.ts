import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runc } from './runc.ts';

/** What a user asks for when creating a service. */
export interface ServiceSpec {
  name: string;
  cmd: string;
  args: string[];
  env: Record<string, string>;
  dir: string;
  /** The sprite's HTTP port is served by this service; at most one service may claim it. */
  httpPort?: number;
}

/** A service and its live state. */
export interface ServiceStatus extends ServiceSpec {
  state: 'running' | 'backoff' | 'stopped';
  pid: number | null;
  restarts: number;
  started: string | null;
}

/** An error from the service manager with a stable code. */
export class ServiceError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'ServiceError';
    this.code = code;
  }
}

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
// A service that stayed up this long is healthy again: its next crash restarts quickly.
const BACKOFF_RESET_AFTER_MS = 60_000;

interface Running {
  spec: ServiceSpec;
  child: ChildProcess | undefined;
  state: ServiceStatus['state'];
  restarts: number;
  started: number | undefined;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  wanted: boolean;
}

/** Supervises the sprite's services: starts them with runc exec, restarts them on exit with backoff, logs to files. */
export class ServiceManager {
  readonly #runc: Runc;
  readonly #file: string;
  readonly #logDir: string;
  readonly #services = new Map<string, Running>();
  #active = false;

  readonly #log: (line: string) => void;

  /** `file` persists the definitions; `logDir` receives `<name>.log`; `log` gets lifecycle events. */
  constructor(runc: Runc, file: string, logDir: string, log: (line: string) => void) {
    this.#runc = runc;
    this.#log = log;
    this.#file = file;
    this.#logDir = logDir;
    mkdirSync(logDir, { recursive: true });
    for (const spec of this.#load()) this.#services.set(spec.name, this.#entry(spec));
  }

  /** Starts every defined service; called once the container runs. */
  activate(): void {
    this.#active = true;
    for (const service of this.#services.values()) this.#launch(service);
  }

  /** Lists services by name. */
  list(): ServiceStatus[] {
    return [...this.#services.values()].map((service) => this.#status(service)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** One service; throws ERR_SERVICE_NOT_FOUND. */
  get(name: string): ServiceStatus {
    return this.#status(this.#require(name));
  }

  /** Creates or replaces a service and starts it. Throws ERR_HTTP_PORT_TAKEN if another service owns the HTTP port. */
  async put(spec: ServiceSpec): Promise<ServiceStatus> {
    if (spec.httpPort !== undefined) {
      const owner = [...this.#services.values()].find((s) => s.spec.name !== spec.name && s.spec.httpPort !== undefined);
      if (owner) throw new ServiceError('ERR_HTTP_PORT_TAKEN', `service ${owner.spec.name} already owns the HTTP port`);
    }
    const previous = this.#services.get(spec.name);
    if (previous) await this.#stop(previous);
    const service = this.#entry(spec);
    this.#services.set(spec.name, service);
    this.#save();
    if (this.#active) this.#launch(service);
    return this.#status(service);
  }

  /** Stops and removes a service; throws ERR_SERVICE_NOT_FOUND. */
  async remove(name: string): Promise<void> {
    const service = this.#require(name);
    this.#services.delete(name);
    this.#save();
    await this.#stop(service);
  }

  /** Path of a service's log file; throws ERR_SERVICE_NOT_FOUND. */
  logPath(name: string): string {
    this.#require(name);
    return join(this.#logDir, `${name}.log`);
  }

  /** Stops every service (the definitions stay). */
  async stopAll(): Promise<void> {
    this.#active = false;
    await Promise.all([...this.#services.values()].map((service) => this.#stop(service)));
  }

  #entry(spec: ServiceSpec): Running {
    return { spec, child: undefined, state: 'stopped', restarts: 0, started: undefined, backoffMs: BACKOFF_FIRST_MS, timer: undefined, wanted: true };
  }

  #launch(service: Running): void {
    service.timer = undefined;
    if (!service.wanted || !this.#active) return;
    const log = openSync(join(this.#logDir, `${service.spec.name}.log`), 'a');
    const { spec } = service;
    const child = spawn('runc', this.#runc.execArgs({ command: [spec.cmd, ...spec.args], env: spec.env, dir: spec.dir }), {
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    service.child = child;
    service.state = 'running';
    service.started = Date.now();
    this.#log(`service ${spec.name} started (pid ${child.pid})`);
    child.once('error', () => undefined);
    child.once('exit', (code, signal) => {
      service.child = undefined;
      this.#log(`service ${spec.name} exited (${signal ?? code})`);
      if (!service.wanted || !this.#active) {
        service.state = 'stopped';
        return;
      }
      const upFor = Date.now() - (service.started ?? 0);
      if (upFor >= BACKOFF_RESET_AFTER_MS) service.backoffMs = BACKOFF_FIRST_MS;
      service.state = 'backoff';
      service.restarts += 1;
      service.timer = setTimeout(() => this.#launch(service), service.backoffMs);
      service.backoffMs = Math.min(service.backoffMs * 2, BACKOFF_MAX_MS);
    });
  }

  async #stop(service: Running): Promise<void> {
    service.wanted = false;
    if (service.timer) clearTimeout(service.timer);
    service.timer = undefined;
    const child = service.child;
    if (!child) {
      service.state = 'stopped';
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // runc forwards SIGTERM to the service; SIGKILL cannot be forwarded, so it is the last resort.
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
    service.state = 'stopped';
  }

  #require(name: string): Running {
    const service = this.#services.get(name);
    if (!service) throw new ServiceError('ERR_SERVICE_NOT_FOUND', `no service named ${name}`);
    return service;
  }

  #status(service: Running): ServiceStatus {
    return {
      ...service.spec,
      state: service.state,
      pid: service.child?.pid ?? null,
      restarts: service.restarts,
      started: service.started === undefined ? null : new Date(service.started).toISOString(),
    };
  }

  #load(): ServiceSpec[] {
    try {
      return JSON.parse(readFileSync(this.#file, 'utf8')) as ServiceSpec[];
    } catch {
      return [];
    }
  }

  #save(): void {
    const partial = `${this.#file}.partial`;
    writeFileSync(partial, JSON.stringify([...this.#services.values()].map((s) => s.spec), null, 2));
    renameSync(partial, this.#file);
  }
}

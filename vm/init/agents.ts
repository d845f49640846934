/**
 * sprite-init's side of the sprite agents (vm/fs-agent/): it starts them with `runc exec` inside the
 * container, one as the user exec runs as and, for `asRoot` when that user is not root, one as root,
 * and hands each filesystem request or exec a fresh connection to its agent. sprite-init runs as host
 * root outside the container, so it never touches the sprite's files itself: it splices file
 * requests to the agent (the peer checks what comes back) and checks every exec frame itself.
 *
 * The agents connect to an abstract Unix socket in the sprite's network namespace (no path anyone
 * could swap) and prove themselves with a per-agent secret given on their stdin; the per-request
 * token that follows says which request a connection is for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { bundleCgroupPath, cgroupProcsFiles, inCgroup } from './cgroup.ts';
import { coded } from './errors.ts';
import { childInContainer } from './procfs.ts';

const SECRET_BYTES = 32;
const TOKEN_BYTES = 16;
const CONNECT_MS = 15_000;
const CLOSE_MS = 3000;
const MAX_WAITING = 64;
// An agent that died without ever serving is not started again in the background for this long.
const RETRY_MS = 30_000;
const BIN = '/.sprite/bin';
// Below this memory limit the user agent is not started for execs: its ~15 MiB of private memory at
// start would push a small sprite into its OOM killer (files still start it when asked).
const EXEC_AGENT_MIN_MEMORY = 128 * 1024 * 1024;

type Key = 'user' | 'root';
/** What a connection is for: a file request, an exec, or only the proof that the agent is up. */
export type DialKind = 'fs' | 'exec' | 'ping';

interface Waiter {
  kind: DialKind;
  resolve: (socket: net.Socket) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface Agent {
  child: ChildProcess;
  secret: Buffer;
  /** Requests waiting for their connection, by token. */
  waiting: Map<string, Waiter>;
  /** It handed over a connection at least once. */
  served: boolean;
  /** Its pid as sprite-init sees it, once known. */
  pid: number;
}

/** Where the container is and what it runs by default. */
export interface AgentsInit {
  runcRoot: string;
  id: string;
  /** The OCI bundle: its config says which user exec runs as. */
  bundle: string;
  /** The tools directory as sprite-init sees it (mounted at /.sprite/bin inside). */
  toolsDir: string;
  log: (line: string) => void;
}

/** The agents of one sprite. */
export class SpriteAgents {
  readonly #init: AgentsInit;
  readonly #agents = new Map<Key, Agent>();
  readonly #socket = `\0sprite-agent-${randomBytes(8).toString('hex')}`;
  #server: Promise<net.Server> | undefined;
  #closed = false;
  #rootUser: boolean | undefined;
  #cgroupProcs: string[] | undefined;
  #failedAt = -Infinity;
  #enabled = false;

  constructor(init: AgentsInit) {
    this.#init = init;
  }

  /** A fresh connection to the agent of the sprite's user (or its root), started if need be. */
  async connect(root: boolean, kind: DialKind = 'fs', timeoutMs = CONNECT_MS): Promise<net.Socket> {
    if (this.#closed) throw coded('ERR_FS_AGENT', 'the sprite is stopping');
    await this.#listen();
    const key = root && !this.#userIsRoot() ? 'root' : 'user';
    return new Promise((resolve, reject) => {
      const token = randomBytes(TOKEN_BYTES).toString('hex');
      const waiter: Waiter = {
        kind, resolve, reject,
        timer: setTimeout(() => {
          for (const agent of this.#agents.values()) agent.waiting.delete(token);
          // An agent too stuck for an exec (stopped inside the sprite, say) is killed and replaced, so
          // the next exec takes runc at once and a new agent starts.
          if (kind === 'exec') this.#kill(key);
          reject(coded('ERR_FS_AGENT', `the sprite's agent did not connect within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#dial(key, token, waiter);
    });
  }

  /** Whether the user's agent is up (it served before), so an exec need not wait for one to start. */
  ready(): boolean {
    const agent = this.#agents.get('user');
    return agent !== undefined && agent.served && agent.child.exitCode === null && agent.child.signalCode === null;
  }

  /** The sprite started: from now on `warm` may start the user's agent (a warm pool entry runs none). */
  enable(): void {
    this.#enabled = true;
    this.warm();
  }

  /**
   * Starts the user's agent in the background unless it runs, failed to start a short while ago, or
   * the sprite's memory is too small to spare for it.
   */
  warm(): void {
    if (!this.#enabled || this.#closed || this.#agents.has('user') || performance.now() - this.#failedAt < RETRY_MS) return;
    if (this.#memoryLimit() < EXEC_AGENT_MIN_MEMORY) return;
    this.connect(false, 'ping').then((socket) => socket.destroy(), (error: Error) => this.#init.log(`agent: ${error.message}`));
  }

  /** The pid (as sprite-init sees it) of the user's agent, 0 when unknown. */
  pid(): number {
    const agent = this.#agents.get('user');
    if (!agent) return 0;
    if (agent.pid === 0 && agent.child.pid) agent.pid = childInContainer(agent.child.pid);
    return agent.pid;
  }

  /**
   * Ends the agents and the listener, and waits (a little) for the agents to be gone, so nothing of
   * theirs is still leaving the container when the peer unmounts its disk and removes its cgroup.
   */
  async close(): Promise<void> {
    this.#closed = true;
    void this.#server?.then((server) => server.close());
    await Promise.all([...this.#agents.values()].map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // runc passes the signal on to the agent; one that ignores it goes with the container.
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_MS);
      await exited;
      clearTimeout(timer);
    }));
  }

  /**
   * Kills the agent process itself (runc's child in the container) and forgets it; its runc reaps it
   * and exits. Killing runc instead would leave the agent running, and once dead a zombie of
   * sprite-init's pid namespace, which nothing reaps.
   */
  #kill(key: Key): void {
    const agent = this.#agents.get(key);
    if (!agent) return;
    this.#agents.delete(key);
    agent.child.stdin!.destroy();
    const pid = agent.pid || (agent.child.pid ? childInContainer(agent.child.pid) : 0);
    try {
      if (pid) process.kill(pid, 'SIGKILL');
      else agent.child.kill('SIGKILL');
    } catch {
      // Gone already.
    }
  }

  /** Asks the agent (started if need be) for a connection that goes to `waiter`. */
  #dial(key: Key, token: string, waiter: Waiter): void {
    const fail = (error: Error): void => {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    };
    let agent: Agent;
    try {
      agent = this.#agents.get(key) ?? this.#start(key);
    } catch (error) {
      return fail(error as Error);
    }
    if (agent.waiting.size >= MAX_WAITING) return fail(coded('ERR_FS_AGENT', 'too many requests to the sprite agent at once'));
    agent.waiting.set(token, waiter);
    agent.child.stdin!.write(`dial ${token} ${waiter.kind}\n`);
  }

  /** Whether exec's user (the container's process user) is root: then `asRoot` needs no second agent. */
  #userIsRoot(): boolean {
    this.#rootUser ??= (this.#config().process?.user?.uid ?? 0) === 0;
    return this.#rootUser;
  }

  /** The container's memory limit now (the API may change it while the sprite runs); Infinity if unknown. */
  #memoryLimit(): number {
    const path = this.#config().linux?.cgroupsPath ?? '';
    for (const file of [`/sys/fs/cgroup/memory${path}/memory.limit_in_bytes`, `/sys/fs/cgroup${path}/memory.max`]) {
      try {
        const limit = Number(readFileSync(file, 'utf8').trim());
        if (Number.isFinite(limit) && limit > 0) return limit;
      } catch {
        // The other cgroup version.
      }
    }
    return Infinity;
  }

  #config(): { process?: { user?: { uid?: number } }; linux?: { cgroupsPath?: string } } {
    return JSON.parse(readFileSync(join(this.#init.bundle, 'config.json'), 'utf8'));
  }

  #start(key: Key): Agent {
    const loader = readdirSync(join(this.#init.toolsDir, 'lib')).find((name) => name.startsWith('ld-linux'));
    if (!loader) throw coded('ERR_FS_AGENT', 'no loader for the Node runtime in /.sprite/bin/lib');
    const args = ['--root', this.#init.runcRoot, 'exec', '--cwd', '/', ...(key === 'root' ? ['--user', '0:0'] : []), this.#init.id,
      `${BIN}/lib/${loader}`, '--library-path', `${BIN}/lib`, `${BIN}/node`, '--max-old-space-size=64', '--max-semi-space-size=1', `${BIN}/fs-agent/main.js`];
    this.#cgroupProcs ??= cgroupProcsFiles(bundleCgroupPath(this.#init.bundle));
    const command = inCgroup(this.#cgroupProcs, 'runc', args);
    const child = spawn(command.file, command.args, { stdio: ['pipe', 'ignore', 'pipe'] });
    const agent: Agent = { child, secret: randomBytes(SECRET_BYTES), waiting: new Map(), served: false, pid: 0 };
    this.#agents.set(key, agent);
    child.stdin!.on('error', () => undefined);
    child.stdin!.write(`${JSON.stringify({ socket: this.#socket, secret: agent.secret.toString('hex') })}\n`);
    // What the agent says on stderr is the sprite's to say: its first 2 KiB are logged, the rest dropped.
    let said = 0;
    child.stderr!.on('data', (chunk: Buffer) => {
      if (said >= 2048) return;
      const text = chunk.subarray(0, 2048 - said).toString('utf8').replace(/[^\x20-\x7e\n]/g, '?');
      said += chunk.length;
      for (const line of text.split('\n')) if (line) this.#init.log(`agent (${key}): ${line}`);
    });
    const gone = (reason: string): void => {
      if (this.#agents.get(key) === agent) this.#agents.delete(key);
      if (!agent.served) this.#failedAt = performance.now();
      // An agent that served before and died (killed inside the sprite) is started again for the
      // file requests it left waiting; one that never served fails them, so a broken agent cannot
      // loop. An exec falls back to `runc exec` instead of waiting.
      for (const [token, waiter] of agent.waiting) {
        if (agent.served && !this.#closed && waiter.kind === 'fs') this.#dial(key, token, waiter);
        else {
          clearTimeout(waiter.timer);
          waiter.reject(coded('ERR_FS_AGENT', `the sprite's agent ${reason}`));
        }
      }
      agent.waiting.clear();
    };
    child.once('error', (error) => gone(`could not start: ${error.message}`));
    child.once('exit', (code, signal) => {
      this.#init.log(`agent (${key}) exited (${signal ?? code})`);
      gone(`exited (${signal ?? code})`);
    });
    return agent;
  }

  #listen(): Promise<net.Server> {
    this.#server ??= new Promise((resolve, reject) => {
      const server = net.createServer((socket) => this.#authenticate(socket));
      server.maxConnections = 4 * MAX_WAITING;
      server.once('error', reject);
      server.listen(this.#socket, () => resolve(server));
    });
    return this.#server;
  }

  /** Hands a connection to the request whose token follows the secret of the agent it waits on. */
  #authenticate(socket: net.Socket): void {
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), 5000);
    const want = SECRET_BYTES + TOKEN_BYTES;
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < want) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      if (got.length > want) socket.unshift(got.subarray(want));
      const proof = got.subarray(0, SECRET_BYTES);
      const token = got.subarray(SECRET_BYTES, want).toString('hex');
      const agent = [...this.#agents.values()].find((candidate) => timingSafeEqual(candidate.secret, proof));
      const waiter = agent?.waiting.get(token);
      if (!waiter) return void socket.destroy();
      agent!.waiting.delete(token);
      agent!.served = true;
      clearTimeout(waiter.timer);
      waiter.resolve(socket);
    };
    socket.on('data', onData);
  }
}

/** Splices two connections: bytes both ways with backpressure; one closing ends the other once it has flushed, one failing cuts it. */
export function splice(a: net.Socket, b: net.Socket): void {
  for (const [from, to] of [[a, b], [b, a]] as const) {
    from.on('error', () => to.destroy());
    from.on('close', () => to.end());
    from.pipe(to);
  }
}

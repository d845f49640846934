/**
 * sprite-init's side of the file agents (vm/fs-agent/): it starts them on first use with `runc exec`
 * inside the container, one as the user exec runs as and, for `asRoot` when that user is not root,
 * one as root, and hands each filesystem request a fresh connection to its agent. sprite-init runs
 * as host root outside the container, so it never touches the sprite's files itself: it only splices
 * bytes between the peer and the agent, and the peer checks whatever comes back.
 *
 * The agents connect to an abstract Unix socket in the sprite's network namespace (no path anyone
 * could swap) and prove themselves with a per-agent secret given on their stdin.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { coded } from './errors.ts';

const SECRET_BYTES = 32;
const CONNECT_MS = 15_000;
const MAX_WAITING = 64;
const BIN = '/.sprite/bin';

interface Waiter {
  resolve: (socket: net.Socket) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

interface Agent {
  child: ChildProcess;
  secret: Buffer;
  waiting: Waiter[];
  /** It handed over a connection at least once. */
  served: boolean;
}

/** Where the container is and what it runs by default. */
export interface FsAgentsInit {
  runcRoot: string;
  id: string;
  /** The OCI bundle: its config says which user exec runs as. */
  bundle: string;
  /** The tools directory as sprite-init sees it (mounted at /.sprite/bin inside). */
  toolsDir: string;
  log: (line: string) => void;
}

/** The file agents of one sprite. */
export class FsAgents {
  readonly #init: FsAgentsInit;
  readonly #agents = new Map<'user' | 'root', Agent>();
  readonly #socket = `\0sprite-fs-${randomBytes(8).toString('hex')}`;
  #server: Promise<net.Server> | undefined;
  #closed = false;
  #rootUser: boolean | undefined;

  constructor(init: FsAgentsInit) {
    this.#init = init;
  }

  /** A fresh connection to the agent of the sprite's user (or its root), started if need be. */
  async connect(root: boolean): Promise<net.Socket> {
    await this.#listen();
    const key = root && !this.#userIsRoot() ? 'root' : 'user';
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve, reject,
        timer: setTimeout(() => {
          for (const agent of this.#agents.values()) if (agent.waiting.includes(waiter)) agent.waiting.splice(agent.waiting.indexOf(waiter), 1);
          reject(coded('ERR_FS_AGENT', `the sprite's file agent did not connect within ${CONNECT_MS} ms`));
        }, CONNECT_MS),
      };
      this.#dial(key, waiter);
    });
  }

  /** Asks the agent (started if need be) for a connection that goes to `waiter`. */
  #dial(key: 'user' | 'root', waiter: Waiter): void {
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
    if (agent.waiting.length >= MAX_WAITING) return fail(coded('ERR_FS_AGENT', 'too many filesystem requests at once'));
    agent.waiting.push(waiter);
    agent.child.stdin!.write('dial\n');
  }

  /** Ends the agents and the listener. */
  close(): void {
    this.#closed = true;
    // runc passes the signal on to the agent; deleting the container would end it anyway.
    for (const agent of this.#agents.values()) agent.child.kill('SIGTERM');
    void this.#server?.then((server) => server.close());
  }

  /** Whether exec's user (the container's process user) is root: then `asRoot` needs no second agent. */
  #userIsRoot(): boolean {
    if (this.#rootUser === undefined) {
      const config = JSON.parse(readFileSync(join(this.#init.bundle, 'config.json'), 'utf8')) as { process?: { user?: { uid?: number } } };
      this.#rootUser = (config.process?.user?.uid ?? 0) === 0;
    }
    return this.#rootUser;
  }

  #start(key: 'user' | 'root'): Agent {
    const loader = readdirSync(join(this.#init.toolsDir, 'lib')).find((name) => name.startsWith('ld-linux'));
    if (!loader) throw coded('ERR_FS_AGENT', 'no loader for the Node runtime in /.sprite/bin/lib');
    const args = ['--root', this.#init.runcRoot, 'exec', '--cwd', '/', ...(key === 'root' ? ['--user', '0:0'] : []), this.#init.id,
      `${BIN}/lib/${loader}`, '--library-path', `${BIN}/lib`, `${BIN}/node`, '--max-old-space-size=64', '--disable-warning=ExperimentalWarning',
      `${BIN}/fs-agent/main.ts`];
    const child = spawn('runc', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    const agent: Agent = { child, secret: randomBytes(SECRET_BYTES), waiting: [], served: false };
    this.#agents.set(key, agent);
    child.stdin!.on('error', () => undefined);
    child.stdin!.write(`${JSON.stringify({ socket: this.#socket, secret: agent.secret.toString('hex') })}\n`);
    // What the agent says on stderr is the sprite's to say: its first 2 KiB are logged, the rest dropped.
    let said = 0;
    child.stderr!.on('data', (chunk: Buffer) => {
      if (said >= 2048) return;
      const text = chunk.subarray(0, 2048 - said).toString('utf8').replace(/[^\x20-\x7e\n]/g, '?');
      said += chunk.length;
      for (const line of text.split('\n')) if (line) this.#init.log(`fs agent (${key}): ${line}`);
    });
    const gone = (reason: string): void => {
      if (this.#agents.get(key) === agent) this.#agents.delete(key);
      // An agent that served before and died (killed inside the sprite) is started again for the
      // requests it left waiting; one that never served fails them, so a broken agent cannot loop.
      for (const waiter of agent.waiting.splice(0)) {
        if (agent.served && !this.#closed) this.#dial(key, waiter);
        else {
          clearTimeout(waiter.timer);
          waiter.reject(coded('ERR_FS_AGENT', `the sprite's file agent ${reason}`));
        }
      }
    };
    child.once('error', (error) => gone(`could not start: ${error.message}`));
    child.once('exit', (code, signal) => {
      this.#init.log(`fs agent (${key}) exited (${signal ?? code})`);
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

  /** Hands a connection to the oldest request waiting on the agent whose secret it starts with. */
  #authenticate(socket: net.Socket): void {
    socket.on('error', () => undefined);
    const timer = setTimeout(() => socket.destroy(), 5000);
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      got = Buffer.concat([got, chunk]);
      if (got.length < SECRET_BYTES) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      if (got.length > SECRET_BYTES) socket.unshift(got.subarray(SECRET_BYTES));
      const proof = got.subarray(0, SECRET_BYTES);
      const agent = [...this.#agents.values()].find((candidate) => timingSafeEqual(candidate.secret, proof));
      const waiter = agent?.waiting.shift();
      if (!waiter) return void socket.destroy();
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

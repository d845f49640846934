import { agentProcess } from './agent-exec.ts';
import type { SpriteAgents } from './agents.ts';
import { spawnPiped, spawnTty, type ExecProcess, type TermSize } from './exec-process.ts';
import type { PortWatcher } from './ports.ts';
import type { ExecSpec, Runc } from './runc.ts';
import { Session, type DisconnectPolicy, type SessionInfo } from './session.ts';

export type { SessionInfo } from './session.ts';

// A live agent connects in a millisecond; one that does not within this is dead or stuck, and the exec takes runc.
const AGENT_DIAL_MS = 2000;

/** An exec as sprite-init gets it from the peer (validated by exec-ops.ts). */
export interface ExecRequest {
  command: string[];
  env: Record<string, string>;
  dir?: string;
  tty: boolean;
  size: TermSize;
  stdin: boolean;
  policy: DisconnectPolicy;
}

/** Every exec of the sprite is a session: listed, attachable and killable while its process runs. */
export class Sessions {
  readonly #runc: Runc;
  readonly #ports: PortWatcher;
  readonly #agents: SpriteAgents | undefined;
  readonly #sessions = new Map<string, Session>();
  #next = 1;
  /** How many execs each way started (for `status`, and the tests that check the agent is used). */
  readonly started = { agent: 0, runc: 0 };

  constructor(runc: Runc, ports: PortWatcher, agents?: SpriteAgents) {
    this.#runc = runc;
    this.#ports = ports;
    this.#agents = agents;
  }

  /** Number of sessions whose process runs. */
  get active(): number {
    return this.#sessions.size;
  }

  /** Starts `request`; the caller attaches its client next (output until then is kept for it). */
  async start(request: ExecRequest): Promise<Session> {
    const id = String(this.#next++);
    const session = new Session({
      id, command: request.command, workdir: request.dir ?? '/root', size: request.size, stdin: request.stdin,
      policy: request.policy, ports: this.#ports, onEnd: () => this.#sessions.delete(id),
    });
    const spec = { command: request.command, env: request.env, dir: request.dir };
    let proc;
    try {
      proc = request.tty ? await spawnTty(this.#runc, spec, request.size) : ((await this.#viaAgent(spec)) ?? this.#viaRunc(spec));
    } catch (error) {
      session.abandon();
      throw error;
    }
    this.#sessions.set(id, session);
    session.run(proc);
    return session;
  }

  /**
   * The exec on the sprite agent when it is up: a fork inside the container instead of a `runc exec`
   * (~55 ms). Undefined when it is not (not started yet, or killed inside the sprite): then it is
   * started in the background and this exec takes `runc exec`.
   */
  async #viaAgent(spec: ExecSpec): Promise<ExecProcess | undefined> {
    const agents = this.#agents;
    if (!agents?.ready()) return undefined;
    try {
      const socket = await agents.connect(false, 'exec', AGENT_DIAL_MS);
      this.started.agent++;
      return agentProcess(socket, spec, agents.pid());
    } catch {
      return undefined;
    }
  }

  #viaRunc(spec: ExecSpec): ExecProcess {
    this.#agents?.warm();
    this.started.runc++;
    return spawnPiped(this.#runc, spec);
  }

  get(id: string): Session | undefined {
    return this.#sessions.get(id);
  }

  list(): SessionInfo[] {
    return [...this.#sessions.values()].map((session) => session.info());
  }

  /** Ends every session (the sprite stops). */
  killAll(): void {
    for (const session of this.#sessions.values()) session.terminate();
  }
}

import { spawnPiped, spawnTty, type TermSize } from './exec-process.ts';
import type { PortWatcher } from './ports.ts';
import type { Runc } from './runc.ts';
import { Session, type DisconnectPolicy, type SessionInfo } from './session.ts';

export type { SessionInfo } from './session.ts';

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
  readonly #sessions = new Map<string, Session>();
  #next = 1;

  constructor(runc: Runc, ports: PortWatcher) {
    this.#runc = runc;
    this.#ports = ports;
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
      proc = request.tty ? await spawnTty(this.#runc, spec, request.size) : spawnPiped(this.#runc, spec);
    } catch (error) {
      session.abandon();
      throw error;
    }
    this.#sessions.set(id, session);
    session.run(proc);
    return session;
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

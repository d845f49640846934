import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { access, mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Server } from 'node:net';
import { createInterface } from 'node:readline';
import { ControlClient } from './control.ts';
import { VmError } from './errors.ts';
import { setFreezer, thawIfFrozen } from './freezer.ts';
import { STAGE, type InitConfig } from './init/config.ts';
import { claimIds, ID_RANGE, type IdClaim } from './idmap.ts';
import { pinNamespaces, releaseNamespaces, type IdMap, type PinnedNamespaces } from './namespaces.ts';
import type { NetworkAttacher, SpriteNetwork } from './net/index.ts';
import { containerConfig, type Limits } from './oci.ts';
import { serveSpriteRequests, type SpriteRequest, type SpriteRequestHandler } from './requests.ts';
import type { Volume } from './volume.ts';

const INIT_MAIN = new URL('./init/main.ts', import.meta.url).pathname;
const CGROUP_ROOT = '/sys/fs/cgroup';

/** Everything one sandbox needs from the peer. */
export interface SandboxInit {
  /** Per-sprite host directory (the sandbox owns it). */
  dir: string;
  /** Container id for runc; unique on this host. */
  id: string;
  /** The root disk, not yet mounted. */
  volume: Volume;
  /** The ids the disk stores (root as `ids.hostId`); the running sprite gets a range of its own (vm/idmap.ts). */
  ids: IdMap;
  /** cgroup path of the inner container, e.g. `/sprites/<peer>/<id>`. */
  cgroupPath: string;
  limits: Limits;
  /** Directory mounted at /.sprite/bin. */
  toolsDir: string;
  httpPort: number;
  /** Host directories whose mounts the sandbox must not keep a copy of (see InitConfig.privateDirs). */
  privateDirs: string[];
  /** Serves what code inside the sprite asks of the peer (checkpoints); absent: such requests fail. */
  requests?: SpriteRequestHandler;
  /** Hears about inside requests that failed on the peer (the sprite only gets a generic error). */
  onRequestError?: (request: SpriteRequest, error: unknown) => void;
  /** Called once if sprite-init exits without being asked to. */
  onCrash?: (reason: string) => void;
  /** Gives the sprite a veth, an address and a firewall chain (see vm/net); absent: loopback only. */
  network?: NetworkAttacher;
  /** Give up on start-up after this long. @default 20000 */
  startTimeoutMs?: number;
  /**
   * Host directory where Node caches sprite-init's compiled modules, shared by the peer's sandboxes:
   * later starts (pool refills, cold wakes) skip most of the parse and compile. Unset: no cache.
   */
  compileCacheDir?: string;
}

/** Paths inside a sprite's directory. */
export function sandboxPaths(dir: string) {
  const run = join(dir, 'run');
  return {
    rootfs: join(dir, 'rootfs'),
    spriteDir: join(dir, 'sprite'),
    servicesFile: join(dir, 'services.json'),
    run,
    ns: join(run, 'ns'),
    runcRoot: join(run, 'runc'),
    bundle: join(run, 'bundle'),
    control: join(run, 'control.sock'),
    peer: join(run, 'peer.sock'),
    http: join(run, 'http.sock'),
    initConfig: join(run, 'init.json'),
    initLog: join(dir, 'init.log'),
    runcLog: join(dir, 'runc.log'),
  };
}

/**
 * A sprite's outer sandbox: pinned user and network namespaces, the root disk mounted, and
 * sprite-init running in fresh mount/pid/uts/ipc namespaces with the inner container created.
 */
export class Sandbox {
  readonly id: string;
  readonly control: ControlClient;
  readonly paths: ReturnType<typeof sandboxPaths>;
  readonly #init: SandboxInit;
  readonly #namespaces: PinnedNamespaces;
  readonly #process: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #requests: Server | undefined;
  readonly #ids: IdClaim;
  /** The sprite's veth, address and firewall; undefined with egress off. */
  readonly network: SpriteNetwork | undefined;
  #stopping = false;
  #frozen = false;

  private constructor(init: SandboxInit, namespaces: PinnedNamespaces, ids: IdClaim, child: ChildProcess, exited: Promise<void>, requests: Server | undefined, network: SpriteNetwork | undefined) {
    this.id = init.id;
    this.network = network;
    this.#init = init;
    this.paths = sandboxPaths(init.dir);
    this.control = new ControlClient(this.paths.control);
    this.#namespaces = namespaces;
    this.#ids = ids;
    this.#process = child;
    this.#exited = exited;
    this.#requests = requests;
  }

  /** Builds the sandbox up to a created (not started) container. Cleans up after itself on failure. */
  static async prepare(init: SandboxInit): Promise<Sandbox> {
    const paths = sandboxPaths(init.dir);
    await mkdir(STAGE.dir, { recursive: true, mode: 0o755 });
    await rm(paths.run, { recursive: true, force: true });
    const dirs = [paths.rootfs, join(paths.spriteDir, 'bin'), join(paths.spriteDir, 'checkpoints'), paths.bundle, paths.runcRoot];
    for (const dir of dirs) await mkdir(dir, { recursive: true });
    let namespaces: PinnedNamespaces | undefined;
    let ids: IdClaim | undefined;
    let mounted = false;
    let requests: Server | undefined;
    let network: SpriteNetwork | undefined;
    try {
      await init.volume.mount(paths.rootfs);
      mounted = true;
      ids = await claimIds();
      const spriteIds = { hostId: ids.hostId, size: ID_RANGE };
      namespaces = await pinNamespaces(paths.ns, spriteIds, init.ids.hostId);
      network = await init.network?.attach(namespaces.net);
      await writeFile(join(paths.bundle, 'config.json'), JSON.stringify(containerConfig({
        namespaces, ids: spriteIds,
        cgroupPath: init.cgroupPath, limits: init.limits, resolvConf: network !== undefined,
      })));
      const config: InitConfig = {
        id: init.id, runcRoot: paths.runcRoot, bundle: paths.bundle, controlSocket: paths.control, httpSocket: paths.http,
        spriteDir: paths.spriteDir, servicesFile: paths.servicesFile, httpPort: init.httpPort, runcLog: paths.runcLog,
        rootfs: paths.rootfs, toolsDir: init.toolsDir, privateDirs: init.privateDirs, idmapNamespace: namespaces.idmap,
        ...(network && { resolvConf: `nameserver ${network.gateway}\n` }),
      };
      if (init.requests) {
        requests = await serveSpriteRequests(paths.peer, init.requests, { onError: init.onRequestError });
        config.peerSocket = paths.peer;
      }
      await writeFile(paths.initConfig, JSON.stringify(config));
      const { child, exited } = await startInit(paths, namespaces, init.startTimeoutMs ?? 20_000, init.compileCacheDir);
      const sandbox = new Sandbox(init, namespaces, ids, child, exited, requests, network);
      void exited.then(() => sandbox.#afterExit());
      return sandbox;
    } catch (error) {
      requests?.close();
      await network?.release();
      if (namespaces) await releaseNamespaces(namespaces).catch(() => undefined);
      await ids?.release();
      if (mounted) await init.volume.unmount().catch(() => undefined);
      await removeCgroups(init.cgroupPath);
      throw error;
    }
  }

  /** Names the sprite (hostname) and starts its container and services. */
  async start(hostname: string): Promise<void> {
    await this.control.call({ op: 'start', hostname });
  }

  /**
   * Mounts a checkpoint's read-only loop device at /.sprite/checkpoints/<id> inside the sprite
   * (sprite-init mounts it; see init/checkpoints.ts).
   */
  async mountCheckpoint(id: string, device: string): Promise<void> {
    await this.control.call({ op: 'checkpoints.mount', id, device });
  }

  /** Unmounts /.sprite/checkpoints/<id> (lazily: a process inside keeps its view until it leaves). */
  async unmountCheckpoint(id: string): Promise<void> {
    await this.control.call({ op: 'checkpoints.unmount', id });
  }

  /**
   * Freezes the inner container's processes (services, execs, sessions) with their memory kept.
   * sprite-init stays up outside the container's cgroup, so the control socket still answers.
   */
  async freeze(): Promise<void> {
    this.#frozen = true;
    try {
      await setFreezer(this.#init.cgroupPath, 'FROZEN');
    } catch (error) {
      await this.thaw().catch(() => undefined);
      throw error;
    }
  }

  /** Lets the container's processes run again. */
  async thaw(): Promise<void> {
    await setFreezer(this.#init.cgroupPath, 'THAWED');
    this.#frozen = false;
  }

  /**
   * Changes the inner container's memory limit while it runs (cgroup v1 `memory.limit_in_bytes`,
   * v2 `memory.max`). Lowering it below what the sprite uses makes the kernel reclaim first; when it
   * cannot, ERR_MEMORY_IN_USE and the old limit stays.
   */
  async setMemoryLimit(bytes: number): Promise<void> {
    const v1 = join(CGROUP_ROOT, 'memory', this.#init.cgroupPath, 'memory.limit_in_bytes');
    const file = (await access(v1).then(() => true, () => false)) ? v1 : join(CGROUP_ROOT, this.#init.cgroupPath, 'memory.max');
    try {
      await writeFile(file, String(bytes));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EBUSY') throw new VmError('ERR_MEMORY_IN_USE', `the sprite uses more than ${bytes} bytes of memory and could not give it back`);
      throw error;
    }
  }

  /** True between `freeze` and `thaw`. */
  get frozen(): boolean {
    return this.#frozen;
  }

  /** True while sprite-init runs. */
  get alive(): boolean {
    return this.#process.exitCode === null && this.#process.signalCode === null;
  }

  /**
   * Stops everything: services and sessions end, the container is deleted, sprite-init exits,
   * namespaces are released and the disk unmounted. Safe to call more than once.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    // Frozen processes cannot take the shutdown's signals.
    if (this.#frozen) await this.thaw().catch(() => undefined);
    if (this.alive) {
      await this.control.call({ op: 'shutdown' }, 15_000).catch(() => undefined);
      const timer = setTimeout(() => this.#process.kill('SIGKILL'), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
    await this.#cleanup();
  }

  #cleanupDone: Promise<void> | undefined;

  #cleanup(): Promise<void> {
    this.#cleanupDone ??= (async () => {
      this.#requests?.close();
      await this.network?.release();
      await releaseNamespaces(this.#namespaces).catch(() => undefined);
      await this.#ids.release();
      await this.#init.volume.unmount();
      await removeCgroups(this.#init.cgroupPath);
      await rm(this.paths.run, { recursive: true, force: true });
    })();
    return this.#cleanupDone;
  }

  async #afterExit(): Promise<void> {
    if (this.#stopping) return;
    const code = this.#process.exitCode ?? this.#process.signalCode;
    await this.#cleanup().catch(() => undefined);
    this.#init.onCrash?.(`sprite-init exited (${String(code)})`);
  }
}

async function startInit(paths: ReturnType<typeof sandboxPaths>, namespaces: PinnedNamespaces, timeoutMs: number, compileCacheDir: string | undefined): Promise<{ child: ChildProcess; exited: Promise<void> }> {
  const log = openSync(paths.initLog, 'a');
  // nsenter puts sprite-init in the sprite's network namespace; unshare gives it fresh mount,
  // pid, uts and ipc namespaces, with itself as pid 1, so its death ends every process inside.
  // The death signals chain peer -> unshare -> sprite-init: a killed peer leaves no sprite running.
  const child = spawn('setpriv', [
    '--pdeathsig', 'KILL', '--', 'nsenter', `--net=${namespaces.net}`, '--',
    'unshare', '--mount', '--pid', '--uts', '--ipc', '--fork', '--kill-child=SIGKILL', '--mount-proc', '--propagation', 'private',
    '--', process.execPath, '--max-old-space-size=48', '--max-semi-space-size=1', '--disable-warning=ExperimentalWarning', INIT_MAIN, paths.initConfig,
  ], { stdio: ['ignore', 'pipe', log], env: compileCacheDir === undefined ? process.env : { ...process.env, NODE_COMPILE_CACHE: compileCacheDir } });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout! });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new VmError('ERR_SANDBOX_START', `sprite-init not ready after ${timeoutMs} ms; see ${paths.initLog}`)), timeoutMs);
      lines.once('line', (line) => {
        clearTimeout(timer);
        if (line === 'ready') resolve();
        else reject(new VmError('ERR_SANDBOX_START', `sprite-init said ${line}`));
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new VmError('ERR_SANDBOX_START', `sprite-init exited with ${code} during start-up; see ${paths.initLog}`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  lines.close();
  child.stdout!.resume();
  return { child, exited };
}

/** Removes a container's cgroup directories in every v1 hierarchy (they are empty once its processes are gone). */
export async function removeCgroups(cgroupPath: string): Promise<void> {
  // A cgroup left frozen (its peer died while the sprite slept) keeps its killed tasks until thawed.
  await thawIfFrozen(cgroupPath);
  const controllers = await readdir(CGROUP_ROOT).catch(() => [] as string[]);
  for (const controller of controllers) {
    const path = join(CGROUP_ROOT, controller, cgroupPath);
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await rmdir(path);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') break;
        // EBUSY: processes killed a moment ago are still leaving the cgroup.
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ObjectStore } from '../../../vm/storage/store/store.ts';

/** Runs a command and resolves with stdout; rejects with its stderr. */
export function sh(file: string, args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: options.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(new Error(`${file} ${args.join(' ')}: ${String(stderr).trim() || error.message}`), { stderr: String(stderr), code: error.code }));
      else resolve(String(stdout));
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** A fresh temporary directory under /tmp. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${prefix}-`));
}

/**
 * Unmounts everything mounted under `root` (deepest first, lazily when busy) and detaches loop
 * devices whose backing file lives under it, so a failed test leaves nothing behind.
 */
export async function cleanupUnder(root: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')
      .map((line) => line.split(' ')[4])
      .filter((path): path is string => !!path && (path === root || path.startsWith(`${root}/`)))
      .sort((a, b) => b.length - a.length);
    const loops = (await sh('losetup', ['-n', '-O', 'NAME,BACK-FILE', '-l']).catch(() => '')).split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields.length >= 2 && fields[1]!.startsWith(`${root}/`))
      .map((fields) => fields[0]!);
    // ext4 mounts of those loop devices may live outside `root` too.
    const loopMounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')
      .map((line) => line.split(' '))
      .filter((fields) => loops.some((loop) => fields.includes(loop)))
      .map((fields) => fields[4]!);
    if (mounts.length === 0 && loops.length === 0) return;
    for (const target of [...loopMounts, ...mounts.filter((m) => !loopMounts.includes(m))]) {
      await sh('umount', [target]).catch(() => sh('umount', ['-l', target]).catch(() => undefined));
    }
    for (const loop of loops) await sh('losetup', ['-d', loop]).catch(() => undefined);
  }
}

/** Removes a temp dir after unmounting whatever is under it. */
export async function removeTemp(root: string): Promise<void> {
  await cleanupUnder(root);
  await rm(root, { recursive: true, force: true }).catch(() => undefined);
}

/** A child process driven over its IPC channel with numbered requests. */
export class IpcChild {
  readonly child: ChildProcess;
  readonly ready: Promise<unknown>;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  constructor(script: string, args: string[]) {
    this.child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', script, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve, reject) => {
      this.child.on('message', (message: { id?: number; ready?: unknown; value?: unknown; error?: string }) => {
        if (message.ready !== undefined) return resolve(message.ready);
        const pending = this.#pending.get(message.id!);
        if (!pending) return;
        this.#pending.delete(message.id!);
        if (message.error) pending.reject(new Error(message.error));
        else pending.resolve(message.value);
      });
      this.child.once('exit', (code) => {
        reject(new Error(`child exited with ${code}`));
        for (const pending of this.#pending.values()) pending.reject(new Error(`child exited with ${code}`));
      });
    });
    this.ready.catch(() => undefined);
  }

  /** Sends one request and waits for its answer. */
  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      if (!this.child.connected) return reject(new Error('child is gone'));
      this.#pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, op, ...args }, (error) => { if (error) reject(error); });
    });
  }

  /** Kills the child (SIGKILL) and waits for it to exit. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** Deterministic pseudo-random bytes for a seed (AES-256-CTR keystream), so a verifier can recompute what was written. */
export function seededBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return cipher.update(Buffer.alloc(length));
}

/** sha256 hex of a buffer. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A random suffix for names. */
export function suffix(): string {
  return randomBytes(4).toString('hex');
}

/** An object-store backend under test: its URL and how to stop it. */
export interface StoreBackend {
  name: 'file' | 's3';
  url: string;
  stop(): Promise<void>;
}

/** Starts a backend: a temp directory for file://, or fauxqs on loopback port 0 for s3://. */
export async function startBackend(name: 'file' | 's3'): Promise<StoreBackend> {
  if (name === 'file') {
    const dir = await tempDir('store');
    return { name, url: `file://${dir}`, stop: () => rm(dir, { recursive: true, force: true }) };
  }
  // fauxqs accepts any credentials; the SDK just needs some.
  process.env.AWS_ACCESS_KEY_ID ??= 'test';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'test';
  const { startFauxqs } = await import('fauxqs');
  const server = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false });
  const bucket = `b${suffix()}`;
  server.createBucket(bucket);
  return { name, url: `s3://${bucket}/volumes-test?endpoint=http://127.0.0.1:${server.port}`, stop: () => server.stop() };
}

/** Opens a volume engine on `dataDir` against the store at `url`, tuned for quick tests. */
export async function openEngine(url: string, dataDir: string, init: Partial<import('../../../vm/storage/volumes.ts').VolumesInit> = {}) {
  const { Volumes } = await import('../../../vm/storage/volumes.ts');
  const { openObjectStore } = await import('../../../vm/storage/store/open.ts');
  const { silentLogger } = await import('../../../vm/logger.ts');
  const store = init.store ?? (await openObjectStore(url));
  return Volumes.open({
    dataDir, store, logger: silentLogger(), unitSize: 64 * 1024, ...init,
    device: { settleMs: 0, intervalMs: 5, flushTimeoutMs: 20_000, ...init.device },
  });
}

type Around<F> = F extends (...args: infer A) => infer R ? (original: F, ...args: A) => R : never;

/**
 * `inner` with some writes wrapped: each override gets the store's own method (bound) and the
 * call's arguments, to delay, fail, observe or pass it on. Everything else goes to `inner`.
 */
export function interceptStore(inner: ObjectStore, overrides: { [K in 'put' | 'putFile' | 'syncFiles']?: Around<NonNullable<ObjectStore[K]>> }): ObjectStore {
  return new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const original = value.bind(target);
      const around = overrides[prop as keyof typeof overrides] as ((original: unknown, ...args: unknown[]) => unknown) | undefined;
      return around ? (...args: unknown[]) => around(original, ...args) : original;
    },
  });
}

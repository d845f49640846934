import { execFile } from 'node:child_process';
import { mkdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const NET_CLS = '/sys/fs/cgroup/net_cls';

/** One side's processes (a net_cls cgroup with its class id) and the TCP ports they listen on. */
export interface Side {
  /** Write a pid here to put the process (and what it starts afterwards) on this side. */
  procs: string;
  classid: number;
  ports: number[];
}

/**
 * A real network partition between processes on loopback: each side's processes live in a net_cls
 * cgroup, and an nftables table drops every TCP packet a side sends to the other side's listening
 * ports (new connections fail, established ones go silent). Heal deletes the table.
 */
export class Partition {
  readonly #name: string;
  readonly #groups: string[] = [];
  #mountedNetCls = false;

  private constructor(name: string) {
    this.#name = name;
  }

  /** Prepares the net_cls hierarchy (mounting it when the host has not). */
  static async open(name: string): Promise<Partition> {
    const partition = new Partition(name.replace(/[^a-z0-9_]/g, '_'));
    const mounted = await run('findmnt', ['-n', NET_CLS]).then(() => true, () => false);
    if (!mounted) {
      await mkdir(NET_CLS, { recursive: true });
      await run('mount', ['-t', 'cgroup', '-o', 'net_cls', 'net_cls', NET_CLS]);
      partition.#mountedNetCls = true;
    }
    return partition;
  }

  /** A new side with its own class id; fill in `ports` once its processes listen. */
  async side(label: string, classid: number): Promise<Side> {
    const dir = join(NET_CLS, `${this.#name}-${label}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'net_cls.classid'), String(classid));
    this.#groups.push(dir);
    return { procs: join(dir, 'cgroup.procs'), classid, ports: [] };
  }

  /** Cuts `a` from `b` in both directions. */
  async split(a: Side, b: Side): Promise<void> {
    const drop = (from: Side, to: Side): string => `add rule inet ${this.#name} out meta cgroup ${from.classid} tcp dport { ${to.ports.join(', ')} } drop`;
    const script = [`add table inet ${this.#name}`, `add chain inet ${this.#name} out { type filter hook output priority 0; policy accept; }`, drop(a, b), drop(b, a)].join('\n');
    await nft(script);
  }

  /** Removes the rules; connections can form again. */
  async heal(): Promise<void> {
    await nft(`delete table inet ${this.#name}`).catch(() => undefined);
  }

  /** Heals and removes the cgroups (their processes must have exited). */
  async close(): Promise<void> {
    await this.heal();
    for (const dir of this.#groups) await rmdir(dir).catch(() => undefined);
    if (this.#mountedNetCls) await run('umount', [NET_CLS]).catch(() => undefined);
  }
}

function nft(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('nft', ['-f', '-'], (error) => (error ? reject(error) : resolve()));
    child.stdin!.end(script);
  });
}

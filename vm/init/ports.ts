import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { endianness } from 'node:os';

/** A TCP socket listening inside the sprite, as the API reports it. */
export interface ListeningPort {
  port: number;
  /** The address it listens on: `0.0.0.0`, `127.0.0.1`, `::`... */
  address: string;
  /** The listening process as the sprite sees it (its own pid namespace); 0 when it could not be found. */
  pid: number;
}

/** A change of the sprite's listening sockets. */
export type PortEvent = { type: 'port_opened' | 'port_closed' } & ListeningPort;

/** What a subscriber gets: the ports listening when it subscribed, and how to stop. */
export interface PortSubscription {
  ports: ListeningPort[];
  close(): void;
}

// How often the kernel's socket tables are read while anyone listens: a port shows up within this.
const POLL_MS = 500;
// TCP_LISTEN in /proc/net/tcp's `st` column.
const LISTEN = '0A';

/**
 * Watches the TCP listeners of the sprite. sprite-init runs in the sprite's network namespace, so
 * /proc/net/tcp{,6} are the sprite's sockets, and its own /proc (a pid namespace of the sprite's
 * processes only) maps a socket's inode to the process holding it. Both come from the kernel, not
 * from code inside the sprite. It polls only while someone subscribes.
 */
export class PortWatcher {
  readonly #listeners = new Set<(event: PortEvent) => void>();
  /** Listening sockets by inode. */
  #known = new Map<number, ListeningPort>();
  #timer: NodeJS.Timeout | undefined;

  /**
   * Subscribes to changes from now on. The first subscriber reads the tables at once, so a port a
   * command opens right after subscribing counts as new, not as already there.
   */
  subscribe(listener: (event: PortEvent) => void): PortSubscription {
    if (this.#listeners.size === 0) {
      this.#known = this.#read(new Map());
      this.#timer = setInterval(() => this.#poll(), POLL_MS);
      this.#timer.unref();
    }
    this.#listeners.add(listener);
    return {
      ports: [...this.#known.values()].sort((a, b) => a.port - b.port),
      close: () => {
        this.#listeners.delete(listener);
        if (this.#listeners.size === 0) clearInterval(this.#timer);
      },
    };
  }

  #poll(): void {
    const before = this.#known;
    const now = this.#read(before);
    this.#known = now;
    for (const [inode, port] of now) if (!before.has(inode)) this.#emit({ type: 'port_opened', ...port });
    for (const [inode, port] of before) if (!now.has(inode)) this.#emit({ type: 'port_closed', ...port });
  }

  #emit(event: PortEvent): void {
    for (const listener of [...this.#listeners]) listener(event);
  }

  /** The listening sockets now; sockets already in `known` keep their pid, new ones are looked up. */
  #read(known: Map<number, ListeningPort>): Map<number, ListeningPort> {
    const sockets = new Map<number, { port: number; address: string }>();
    for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
      for (const [inode, socket] of parseTcpTable(readOrEmpty(file), v6)) sockets.set(inode, socket);
    }
    const fresh = [...sockets.keys()].filter((inode) => !known.has(inode));
    const owners = fresh.length > 0 ? socketOwners(new Set(fresh)) : new Map<number, number>();
    const result = new Map<number, ListeningPort>();
    for (const [inode, socket] of sockets) result.set(inode, known.get(inode) ?? { ...socket, pid: owners.get(inode) ?? 0 });
    return result;
  }
}

/** The listening sockets of one /proc/net/tcp{,6} table, by inode. */
export function parseTcpTable(text: string, v6: boolean): Map<number, { port: number; address: string }> {
  const sockets = new Map<number, { port: number; address: string }>();
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || fields[3] !== LISTEN) continue;
    const [hexAddress = '', hexPort = ''] = fields[1]!.split(':');
    const inode = Number(fields[9]);
    const port = parseInt(hexPort, 16);
    if (!Number.isSafeInteger(inode) || inode <= 0 || !(port > 0 && port < 65536)) continue;
    const address = v6 ? ipv6(hexAddress) : ipv4(hexAddress);
    if (address !== undefined) sockets.set(inode, { port, address });
  }
  return sockets;
}

/** The kernel prints each 32-bit word of an address in host byte order. */
function words(hex: string, count: number): Buffer | undefined {
  if (!new RegExp(`^[0-9A-Fa-f]{${count * 8}}$`).test(hex)) return undefined;
  const bytes = Buffer.from(hex, 'hex');
  if (endianness() === 'LE') for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes;
}

function ipv4(hex: string): string | undefined {
  const bytes = words(hex, 1);
  return bytes && [...bytes].join('.');
}

function ipv6(hex: string): string | undefined {
  const bytes = words(hex, 4);
  if (!bytes) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The longest run of zero groups becomes `::`.
  let best = { at: -1, length: 1 };
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.length) best = { at: i, length: j - i };
  }
  if (best.at < 0) return groups.join(':');
  return `${groups.slice(0, best.at).join(':')}::${groups.slice(best.at + best.length).join(':')}`;
}

/** Which process holds each socket inode, as the sprite numbers its processes (the innermost NSpid). */
function socketOwners(inodes: Set<number>): Map<number, number> {
  const owners = new Map<number, number>();
  for (const entry of readdirOrEmpty('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    for (const fd of readdirOrEmpty(`/proc/${entry}/fd`)) {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkOrEmpty(`/proc/${entry}/fd/${fd}`));
      const inode = match ? Number(match[1]) : 0;
      if (!inodes.has(inode) || owners.has(inode)) continue;
      owners.set(inode, innerPid(Number(entry)));
    }
    if (owners.size === inodes.size) break;
  }
  return owners;
}

/** A process's pid in the innermost pid namespace it belongs to (the container's, for the sprite's code). */
export function innerPid(pid: number): number {
  const line = /^NSpid:\s+(.+)$/m.exec(readOrEmpty(`/proc/${pid}/status`));
  const last = Number(line?.[1]!.trim().split(/\s+/).pop());
  return Number.isSafeInteger(last) && last > 0 ? last : pid;
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function readdirOrEmpty(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function readlinkOrEmpty(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

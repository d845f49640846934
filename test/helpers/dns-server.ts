// A small authoritative-style DNS server on loopback that plays the upstream resolver in tests and
// benches: it answers from a fixed zone over UDP and TCP, counts the queries it gets, and can be
// told to truncate (TC over UDP) or stay silent for a name.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as connectTcp, createServer, type Server, type Socket } from 'node:net';
import { readName, TYPE } from '../../node/egress/dns-wire.ts';

/** A record the test server answers with: an address (A or AAAA by its form) or a CNAME target. */
export type ZoneRecord = { a: string; ttl?: number } | { aaaa: string; ttl?: number } | { cname: string; ttl?: number };

export interface ZoneOptions {
  /** Records by lowercase owner name. */
  records: Record<string, ZoneRecord[]>;
  /** Names whose UDP answer is truncated (TC, no records): the full answer comes over TCP. */
  truncate?: string[];
  /** Names it never answers. */
  silent?: string[];
}

export interface TestDnsServer {
  address: string;
  port: number;
  /** Queries received by name (lowercase), over either transport. */
  queries: Map<string, number>;
  close(): Promise<void>;
}

function encodeName(name: string): Buffer {
  const parts = name.split('.').filter(Boolean).map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

function rr(owner: Buffer, type: number, ttl: number, data: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(1, 2);
  fixed.writeUInt32BE(ttl, 4);
  fixed.writeUInt16BE(data.length, 8);
  return Buffer.concat([owner, fixed, data]);
}

function ipv6Bytes(text: string): Buffer {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The answer to `query` from `zone`, or undefined to stay silent. Owner names after the question point to it (compression). */
export function answerFrom(zone: ZoneOptions, query: Buffer, udp: boolean): Buffer | undefined {
  const { name, end } = readName(query, 12);
  if (zone.silent?.includes(name)) return undefined;
  const type = query.readUInt16BE(end);
  const question = query.subarray(12, end + 4);
  const truncated = udp && zone.truncate?.includes(name);
  const records: Buffer[] = [];
  let current = name;
  let owner: Buffer = Buffer.from([0xc0, 12]);
  for (let hop = 0; hop < 10 && !truncated; hop++) {
    const set = zone.records[current] ?? [];
    const alias = set.find((r) => 'cname' in r);
    if (alias && 'cname' in alias) {
      records.push(rr(owner, TYPE.CNAME, alias.ttl ?? 300, encodeName(alias.cname)));
      current = alias.cname;
      owner = encodeName(current);
      continue;
    }
    for (const r of set) {
      if ('a' in r && type === TYPE.A) records.push(rr(owner, TYPE.A, r.ttl ?? 300, Buffer.from(r.a.split('.').map(Number))));
      if ('aaaa' in r && type === TYPE.AAAA) records.push(rr(owner, TYPE.AAAA, r.ttl ?? 300, ipv6Bytes(r.aaaa)));
    }
    break;
  }
  const known = Object.hasOwn(zone.records, name);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8000 | 0x0400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | (truncated ? 0x0200 : 0) | (known || truncated ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  return Buffer.concat([header, question, ...records]);
}

/** Starts the server on 127.0.0.1, UDP and TCP on one port. */
export async function startDnsServer(zone: ZoneOptions): Promise<TestDnsServer> {
  const queries = new Map<string, number>();
  const count = (query: Buffer): void => {
    try {
      const { name } = readName(query, 12);
      queries.set(name, (queries.get(name) ?? 0) + 1);
    } catch {
      // not a query it can read
    }
  };
  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', (query, from) => {
    count(query);
    const reply = answerFrom(zone, query, true);
    if (reply) udp.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
  const port = udp.address().port;
  const sockets = new Set<Socket>();
  const tcp: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + query.length);
        count(query);
        const reply = answerFrom(zone, query, false);
        if (!reply) continue;
        const length = Buffer.alloc(2);
        length.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([length, reply]));
      }
    });
  });
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', () => resolve()));
  return {
    address: '127.0.0.1',
    port,
    queries,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), new Promise<void>((resolve) => tcp.close(() => resolve()))]);
    },
  };
}

/** A UDP client bound to a chosen loopback address (the resolver tells sprites apart by it). */
export class DnsClient {
  readonly #socket: UdpSocket;
  #waiting: ((reply: Buffer | undefined) => void) | undefined;

  private constructor(socket: UdpSocket) {
    this.#socket = socket;
    socket.on('message', (reply) => this.#waiting?.(reply));
  }

  static async open(from = '127.0.0.1'): Promise<DnsClient> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, from, () => resolve()));
    return new DnsClient(socket);
  }

  /** Sends one query and waits for one reply; undefined when none comes within `timeoutMs`. */
  ask(to: { address: string; port: number }, query: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (reply: Buffer | undefined): void => {
        clearTimeout(timer);
        this.#waiting = undefined;
        resolve(reply);
      };
      this.#waiting = done;
      this.#socket.send(query, to.port, to.address);
    });
  }

  close(): void {
    this.#socket.close();
  }
}

/** One query over TCP from a chosen local address; the reply, or undefined when the connection closes first. */
export function askTcp(to: { address: string; port: number }, query: Buffer, from = '127.0.0.1'): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: to.address, port: to.port, localAddress: from });
    let buffered = Buffer.alloc(0);
    socket.on('error', () => resolve(undefined));
    socket.on('close', () => resolve(undefined));
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        resolve(Buffer.from(buffered.subarray(2, 2 + buffered.readUInt16BE(0))));
        socket.destroy();
      }
    });
    const length = Buffer.alloc(2);
    length.writeUInt16BE(query.length);
    socket.write(Buffer.concat([length, query]));
  });
}

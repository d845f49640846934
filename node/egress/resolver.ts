import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { NetworkPolicy } from '../policies.ts';
import { AnswerCache } from './answer-cache.ts';
import { admission, cacheSeconds, clampAdmitTtl, type Admission } from './answer-meaning.ts';
import { buildReply, CLASS_IN, RCODE, RcodeError, readQuery, TYPE, WireError, type Query } from './dns-wire.ts';
import { compilePolicy } from './policy-match.ts';
import { Upstream, type UpstreamOptions } from './upstream.ts';

/** What a peer's policy resolver needs. */
export interface ResolverOptions {
  /** Where it listens (UDP and TCP): the peer's gateway address, port 53; tests use loopback and port 0. */
  listen: { address: string; port: number };
  /** The resolver it forwards allowed queries to. */
  upstream: UpstreamOptions;
  /** The policy of the sprite with this source address; undefined for an address that is no sprite's (REFUSED). */
  policyFor(source: string): NetworkPolicy | undefined;
  /**
   * Called with the addresses an allowed answer for `name` gives the sprite at `source` and for how
   * long (seconds, 5..3600), before the answer is sent: the firewall admits them here. If it throws,
   * the client gets SERVFAIL.
   */
  onAllowed(source: string, name: string, addresses: string[], ttlSeconds: number): void | Promise<void>;
  /** Reports what went wrong with a query (an upstream down, an admission that failed). */
  warn?(message: string, fields: Record<string, unknown>): void;
  limits?: Partial<ResolverLimits>;
}

/** Bounds on what a sprite (or many) can make the resolver hold. */
export interface ResolverLimits {
  /** Queries of one source being answered at once; more are dropped (clients retry). */
  inFlightPerSource: number;
  /** Answers cached. */
  cacheEntries: number;
  /** TCP connections open at once. */
  tcpConnections: number;
  /** A TCP connection idle this long is closed. */
  tcpIdleMs: number;
  /** UDP queries larger than this are dropped. */
  maxUdpQuery: number;
}

const LIMITS: ResolverLimits = { inFlightPerSource: 64, cacheEntries: 10_000, tcpConnections: 256, tcpIdleMs: 10_000, maxUdpQuery: 4096 };

/** A reply to send, or nothing (the query was dropped). */
type Outcome = Buffer | undefined;

/**
 * One DNS server per peer for all its sprites, on UDP and TCP. A query's source address says whose
 * it is; that sprite's policy decides: denied names (and unknown sources) get REFUSED, allowed ones
 * are answered from the cache or forwarded to the upstream and its answer returned as it came, the
 * addresses it gives reported first through `onAllowed`.
 */
export class PolicyResolver {
  readonly #options: ResolverOptions;
  readonly #limits: ResolverLimits;
  readonly #cache: AnswerCache;
  readonly #upstream: Upstream;
  readonly #udp: UdpSocket;
  readonly #tcp: Server;
  readonly #connections = new Set<Socket>();
  readonly #inFlight = new Map<string, number>();
  #closed = false;

  private constructor(options: ResolverOptions, limits: ResolverLimits, upstream: Upstream, udp: UdpSocket, tcp: Server) {
    this.#options = options;
    this.#limits = limits;
    this.#cache = new AnswerCache(limits.cacheEntries);
    this.#upstream = upstream;
    this.#udp = udp;
    this.#tcp = tcp;
    udp.on('message', (bytes, from) => {
      if (bytes.length > limits.maxUdpQuery) return;
      void this.#serve(from.address, bytes, true).then((reply) => {
        if (reply && !this.#closed) udp.send(reply, from.port, from.address);
      });
    });
    udp.on('error', (error) => this.#warn('UDP socket error', { error: error.message }));
    tcp.maxConnections = limits.tcpConnections;
    tcp.on('connection', (socket) => this.#connection(socket));
  }

  static async start(options: ResolverOptions): Promise<PolicyResolver> {
    const limits = { ...LIMITS, ...options.limits };
    const { address, port } = options.listen;
    const upstream = await Upstream.open(options.upstream);
    const udp = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' });
    const tcp = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, address, () => resolve());
      });
      // Port 0: TCP takes the port UDP was given, so one address:port serves both.
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(udp.address().port, address, () => resolve());
      });
    } catch (error) {
      upstream.close();
      udp.close();
      tcp.close();
      throw error;
    }
    return new PolicyResolver(options, limits, upstream, udp, tcp);
  }

  /** The address and port it serves (UDP and TCP alike). */
  get address(): { address: string; port: number } {
    const { address, port } = this.#udp.address();
    return { address, port };
  }

  /** Answers cached now. */
  get cached(): number {
    return this.#cache.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const socket of this.#connections) socket.destroy();
    this.#upstream.close();
    await Promise.all([new Promise<void>((resolve) => this.#udp.close(() => resolve())), new Promise<void>((resolve) => this.#tcp.close(() => resolve()))]);
  }

  /** Reads length-prefixed queries from a TCP client and answers each as it is ready. */
  #connection(socket: Socket): void {
    this.#connections.add(socket);
    socket.on('close', () => this.#connections.delete(socket));
    socket.on('error', () => {});
    socket.setTimeout(this.#limits.tcpIdleMs, () => socket.destroy());
    const source = socket.remoteAddress ?? '';
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = Buffer.from(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + query.length);
        void this.#serve(source, query, false).then((reply) => {
          if (!reply || socket.destroyed) return;
          const length = Buffer.alloc(2);
          length.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([length, reply]));
        });
      }
    });
  }

  /** Answers one query from `from`, counting it against its source's in-flight bound. */
  async #serve(from: string, bytes: Buffer, udp: boolean): Promise<Outcome> {
    const source = from.startsWith('::ffff:') ? from.slice(7) : from;
    const inFlight = this.#inFlight.get(source) ?? 0;
    if (inFlight >= this.#limits.inFlightPerSource) return undefined;
    this.#inFlight.set(source, inFlight + 1);
    try {
      return await this.#answer(source, bytes, udp);
    } catch (error) {
      this.#warn('query failed', { source, error: (error as Error).message });
      return undefined;
    } finally {
      const left = (this.#inFlight.get(source) ?? 1) - 1;
      if (left === 0) this.#inFlight.delete(source);
      else this.#inFlight.set(source, left);
    }
  }

  async #answer(source: string, bytes: Buffer, udp: boolean): Promise<Outcome> {
    let query: Query;
    try {
      query = readQuery(bytes);
    } catch (error) {
      // A readable header gets an error reply (without the question, which may be what is wrong); less gets nothing.
      if (!(error instanceof WireError) || bytes.length < 12 || (bytes[2]! & 0x80) !== 0) return undefined;
      return buildReply(bytes, 12, error instanceof RcodeError ? error.rcode : RCODE.FORMERR);
    }
    const refuse = (): Buffer => buildReply(bytes, query.questionEnd, RCODE.REFUSED);
    const { name, type } = query.question;
    const policy = this.#options.policyFor(source);
    if (!policy || query.question.class !== CLASS_IN || type === TYPE.AXFR || type === TYPE.IXFR) return refuse();
    if (compilePolicy(policy).decide(name) === 'deny') return refuse();

    const key = AnswerCache.key(name, type, query.edns);
    let reply = this.#cache.reply(key, bytes, query.questionEnd);
    if (!reply) {
      try {
        const got = await this.#upstream.resolve(bytes, query.question);
        // The question is copied back as the client wrote it, so it must sit where the client's did.
        if (got.answer.questionEnd !== query.questionEnd) throw new Error('the answer repeats the question in another form');
        const admits = admission(got.answer, name);
        this.#cache.store(key, got.bytes, got.answer.ttlOffsets, cacheSeconds(got.answer), admits);
        const sent = Buffer.from(got.bytes);
        sent.set(bytes.subarray(12, query.questionEnd), 12);
        reply = { bytes: sent, admission: admits };
      } catch (error) {
        this.#warn('upstream resolver did not answer', { name, error: (error as Error).message });
        return buildReply(bytes, query.questionEnd, RCODE.SERVFAIL);
      }
    }
    if (!(await this.#admit(source, name, reply.admission))) return buildReply(bytes, query.questionEnd, RCODE.SERVFAIL);
    // Too big for this client's UDP: it retries over TCP (and finds the answer cached).
    if (udp && reply.bytes.length > query.udpSize) return buildReply(bytes, query.questionEnd, RCODE.NOERROR, { tc: true });
    return reply.bytes;
  }

  async #admit(source: string, name: string, { addresses, ttl }: Admission): Promise<boolean> {
    if (addresses.length === 0) return true;
    try {
      await this.#options.onAllowed(source, name, addresses, clampAdmitTtl(ttl));
      return true;
    } catch (error) {
      this.#warn('admitting addresses failed', { source, error: (error as Error).message });
      return false;
    }
  }

  #warn(message: string, fields: Record<string, unknown>): void {
    this.#options.warn?.(message, fields);
  }
}

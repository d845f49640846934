import { randomInt } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6, connect } from 'node:net';
import { readAnswer, type Answer, type Question } from './dns-wire.ts';

/** Where the upstream resolver is and how patiently it is asked. */
export interface UpstreamOptions {
  address: string;
  port: number;
  /** Per attempt; default 2 s. */
  timeoutMs?: number;
  /** UDP attempts before giving up; default 2. */
  attempts?: number;
}

/** An upstream answer: its bytes (with the id the client's query had) and what they say. */
export interface UpstreamAnswer {
  bytes: Buffer;
  answer: Answer;
}

export class UpstreamError extends Error {}

interface Pending {
  question: Question;
  settle: (answer: UpstreamAnswer | undefined) => void;
}

/**
 * The upstream resolver, asked over UDP from one socket with a fresh random id per attempt, and
 * over TCP when a UDP answer comes back truncated. An answer counts only when it comes from the
 * upstream's address and port, carries a pending id, reads fully and repeats the question; anything
 * else is ignored (a forged or stray datagram cannot answer for the upstream).
 */
export class Upstream {
  readonly #options: Required<UpstreamOptions>;
  readonly #socket: UdpSocket;
  readonly #pending = new Map<number, Pending>();
  #closed = false;

  private constructor(options: Required<UpstreamOptions>, socket: UdpSocket) {
    this.#options = options;
    this.#socket = socket;
    socket.on('message', (bytes, from) => {
      if (from.port !== options.port || from.address !== options.address || bytes.length < 12) return;
      const pending = this.#pending.get(bytes.readUInt16BE(0));
      const answer = pending && parse(bytes, pending.question);
      if (answer) pending.settle({ bytes, answer });
    });
    socket.on('error', () => {});
  }

  static async open(options: UpstreamOptions): Promise<Upstream> {
    const socket = createSocket(isIPv6(options.address) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => resolve());
    });
    return new Upstream({ timeoutMs: 2000, attempts: 2, ...options }, socket);
  }

  /** Asks the upstream `query` (the client's bytes, which are not changed); throws UpstreamError when no good answer comes. */
  async resolve(query: Buffer, question: Question): Promise<UpstreamAnswer> {
    const clientId = query.readUInt16BE(0);
    for (let attempt = 0; attempt < this.#options.attempts && !this.#closed; attempt++) {
      const got = await this.#udp(query, question);
      if (!got) continue;
      const final = got.answer.header.tc ? await this.#tcp(query, question) : got;
      final.bytes.writeUInt16BE(clientId, 0);
      return final;
    }
    throw new UpstreamError(`no answer from ${this.#options.address}:${this.#options.port}`);
  }

  close(): void {
    this.#closed = true;
    for (const pending of this.#pending.values()) pending.settle(undefined);
    this.#socket.close();
  }

  #udp(query: Buffer, question: Question): Promise<UpstreamAnswer | undefined> {
    let id = randomInt(65536);
    while (this.#pending.has(id)) id = (id + 1) & 0xffff;
    const sent = Buffer.from(query);
    sent.writeUInt16BE(id, 0);
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), this.#options.timeoutMs);
      const settle = (answer: UpstreamAnswer | undefined): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(answer);
      };
      this.#pending.set(id, { question, settle });
      this.#socket.send(sent, this.#options.port, this.#options.address, (error) => error && settle(undefined));
    });
  }

  /** One query over a new TCP connection (length-prefixed, RFC 1035 4.2.2). */
  #tcp(query: Buffer, question: Question): Promise<UpstreamAnswer> {
    const id = randomInt(65536);
    const sent = Buffer.alloc(query.length + 2);
    sent.writeUInt16BE(query.length, 0);
    query.copy(sent, 2);
    sent.writeUInt16BE(id, 2);
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.#options.address, port: this.#options.port });
      let received = Buffer.alloc(0);
      const fail = (why: string): void => {
        socket.destroy();
        reject(new UpstreamError(`TCP to the upstream: ${why}`));
      };
      socket.setTimeout(this.#options.timeoutMs, () => fail('timed out'));
      socket.on('error', (error) => fail(error.message));
      socket.on('end', () => fail('closed before answering'));
      socket.on('data', (chunk) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
        const bytes = Buffer.from(received.subarray(2, 2 + received.readUInt16BE(0)));
        socket.destroy();
        const answer = bytes.length >= 12 && bytes.readUInt16BE(0) === id ? parse(bytes, question) : undefined;
        if (answer) resolve({ bytes, answer });
        else reject(new UpstreamError('TCP to the upstream: a bad answer'));
      });
      socket.write(sent);
    });
  }
}

/** The answer read fully, if it is one to `question`. */
function parse(bytes: Buffer, question: Question): Answer | undefined {
  try {
    const answer = readAnswer(bytes);
    const q = answer.question;
    return q.name === question.name && q.type === question.type && q.class === question.class ? answer : undefined;
  } catch {
    return undefined;
  }
}

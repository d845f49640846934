/**
 * Just enough of the DNS wire format (RFC 1035, EDNS from RFC 6891) for the policy resolver: read a
 * query from a sprite and an answer from the upstream, both untrusted, with every length checked
 * against the buffer; build the short replies the resolver makes itself. A malformed message
 * throws WireError and nothing else.
 */

export const TYPE = { A: 1, CNAME: 5, SOA: 6, AAAA: 28, OPT: 41, IXFR: 251, AXFR: 252 } as const;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const CLASS_IN = 1;
const HEADER = 12;
/** A name is at most 255 octets on the wire (RFC 1035 3.1). */
const MAX_NAME = 255;

export class WireError extends Error {}

/** A query that is readable but refused with a given rcode. */
export class RcodeError extends WireError {
  readonly rcode: number;
  constructor(rcode: number, message: string) {
    super(message);
    this.rcode = rcode;
  }
}

export interface Header {
  id: number;
  qr: boolean;
  opcode: number;
  tc: boolean;
  rd: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export interface Question {
  /** Lowercase, dot-separated, no trailing dot; bytes outside [a-z0-9_-] escaped as `\DDD`. */
  name: string;
  type: number;
  class: number;
}

/** A query as the resolver needs it. */
export interface Query {
  header: Header;
  question: Question;
  /** Where the question ends: bytes 12..questionEnd are the question as the client wrote it. */
  questionEnd: number;
  /** Whether the query carries an OPT record (EDNS). */
  edns: boolean;
  /** The largest UDP reply the client takes: 512, or its EDNS size (within 512..4096). */
  udpSize: number;
}

/** One resource record of an answer. */
export interface ResourceRecord {
  name: string;
  type: number;
  ttl: number;
  /** Offset of the TTL field, so a cached copy can count it down. */
  ttlOffset: number;
  /** A and AAAA: the address. */
  address?: string;
  /** CNAME: the target name. */
  target?: string;
  /** SOA: its minimum (the negative-caching TTL). */
  minimum?: number;
}

/** An upstream answer, read fully. */
export interface Answer {
  header: Header;
  question: Question;
  questionEnd: number;
  answers: ResourceRecord[];
  authority: ResourceRecord[];
  /** The TTL offsets of every record but OPT (whose "TTL" holds flags). */
  ttlOffsets: number[];
}

function need(buf: Uint8Array, offset: number, length: number): void {
  if (offset < 0 || offset + length > buf.length) throw new WireError('message truncated');
}

function u16(buf: Uint8Array, offset: number): number {
  need(buf, offset, 2);
  return (buf[offset]! << 8) | buf[offset + 1]!;
}

function u32(buf: Uint8Array, offset: number): number {
  need(buf, offset, 4);
  return ((buf[offset]! << 24) >>> 0) + (buf[offset + 1]! << 16) + (buf[offset + 2]! << 8) + buf[offset + 3]!;
}

export function readHeader(buf: Uint8Array): Header {
  need(buf, 0, HEADER);
  const flags = u16(buf, 2);
  return {
    id: u16(buf, 0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
    qdcount: u16(buf, 4),
    ancount: u16(buf, 6),
    nscount: u16(buf, 8),
    arcount: u16(buf, 10),
  };
}

function labelText(buf: Uint8Array, start: number, length: number): string {
  let text = '';
  for (let i = start; i < start + length; i++) {
    let c = buf[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    const plain = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
    // Escaping keeps a label holding a dot (or any odd byte) from reading as two labels to the rules.
    text += plain ? String.fromCharCode(c) : `\\${c.toString().padStart(3, '0')}`;
  }
  return text;
}

/**
 * Reads a name at `offset`; returns it and the offset after it where it sits (after the first
 * pointer, if any). Pointers must point strictly backwards, which rules out loops.
 */
export function readName(buf: Uint8Array, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = offset;
  let end = -1;
  let octets = 1;
  let floor = offset;
  for (;;) {
    need(buf, pos, 1);
    const length = buf[pos]!;
    if (length === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = length & 0xc0;
    if (kind === 0xc0) {
      const target = u16(buf, pos) & 0x3fff;
      if (end < 0) end = pos + 2;
      if (target >= floor) throw new WireError('compression pointer does not point backwards');
      floor = target;
      pos = target;
      continue;
    }
    if (kind !== 0) throw new WireError('unknown label type');
    need(buf, pos + 1, length);
    octets += length + 1;
    if (octets > MAX_NAME) throw new WireError('name longer than 255 octets');
    labels.push(labelText(buf, pos + 1, length));
    pos += length + 1;
  }
  return { name: labels.join('.'), end };
}

function readQuestion(buf: Uint8Array, offset: number): { question: Question; end: number } {
  const { name, end } = readName(buf, offset);
  return { question: { name, type: u16(buf, end), class: u16(buf, end + 2) }, end: end + 4 };
}

/** Formats 16 address bytes with the longest run of zero groups as `::`. */
function ipv6(buf: Uint8Array, offset: number): string {
  const groups = Array.from({ length: 8 }, (_, i) => (buf[offset + 2 * i]! << 8) | buf[offset + 2 * i + 1]!);
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

/** Reads one record at `offset`; returns it (without OPT's meaning) and the offset after it. */
function readRecord(buf: Uint8Array, offset: number): { record: ResourceRecord; end: number } {
  const { name, end: nameEnd } = readName(buf, offset);
  const type = u16(buf, nameEnd);
  const ttlOffset = nameEnd + 4;
  const raw = u32(buf, ttlOffset);
  const length = u16(buf, nameEnd + 8);
  const data = nameEnd + 10;
  need(buf, data, length);
  // RFC 2181 8: a TTL with the top bit set counts as zero.
  const record: ResourceRecord = { name, type, ttl: raw > 0x7fffffff ? 0 : raw, ttlOffset };
  if (type === TYPE.A && length === 4) record.address = Array.from(buf.subarray(data, data + 4)).join('.');
  if (type === TYPE.AAAA && length === 16) record.address = ipv6(buf, data);
  if (type === TYPE.CNAME) {
    const target = readName(buf.subarray(0, data + length), data);
    if (target.end !== data + length) throw new WireError('CNAME data has trailing bytes');
    record.target = target.name;
  }
  if (type === TYPE.SOA) {
    const mname = readName(buf.subarray(0, data + length), data);
    const rname = readName(buf.subarray(0, data + length), mname.end);
    record.minimum = u32(buf.subarray(0, data + length), rname.end + 16);
  }
  return { record, end: data + length };
}

/**
 * Reads a query from a client. Throws WireError when it cannot be read, RcodeError when it can but
 * the resolver will not serve it (the reply's rcode says why).
 */
export function readQuery(buf: Uint8Array): Query {
  const header = readHeader(buf);
  if (header.qr) throw new WireError('a response, not a query');
  if (header.opcode !== 0) throw new RcodeError(RCODE.NOTIMP, 'only standard queries');
  if (header.qdcount !== 1 || header.ancount !== 0 || header.nscount !== 0 || header.arcount > 1) {
    throw new RcodeError(RCODE.FORMERR, 'a query has one question and at most an OPT record');
  }
  const { question, end } = readQuestion(buf, HEADER);
  let edns = false;
  let udpSize = 512;
  let pos = end;
  if (header.arcount === 1) {
    const { record, end: after } = readRecord(buf, pos);
    if (record.type !== TYPE.OPT) throw new RcodeError(RCODE.FORMERR, 'the additional record of a query is OPT');
    edns = true;
    udpSize = Math.min(4096, Math.max(512, u16(buf, record.ttlOffset - 2)));
    pos = after;
  }
  if (pos !== buf.length) throw new RcodeError(RCODE.FORMERR, 'trailing bytes after the query');
  return { header, question, questionEnd: end, edns, udpSize };
}

/** Reads an upstream answer fully: header, its one question, answer and authority records (additional ones are only checked). */
export function readAnswer(buf: Uint8Array): Answer {
  const header = readHeader(buf);
  if (!header.qr || header.qdcount !== 1) throw new WireError('not an answer to one question');
  const { question, end } = readQuestion(buf, HEADER);
  const sections: ResourceRecord[][] = [[], [], []];
  const ttlOffsets: number[] = [];
  const counts = [header.ancount, header.nscount, header.arcount];
  let pos = end;
  for (const [i, count] of counts.entries()) {
    for (let n = 0; n < count; n++) {
      const { record, end: after } = readRecord(buf, pos);
      if (record.type !== TYPE.OPT) ttlOffsets.push(record.ttlOffset);
      sections[i]!.push(record);
      pos = after;
    }
  }
  if (pos !== buf.length) throw new WireError('trailing bytes after the answer');
  return { header, question, questionEnd: end, answers: sections[0]!, authority: sections[1]!, ttlOffsets };
}

/**
 * The resolver's own reply to a query: header (id, RD echoed, RA set, `rcode`, TC when asked) and
 * the client's question as it wrote it; no records. `question` false leaves the question out (for
 * a FORMERR to a query whose question cannot be read).
 */
export function buildReply(query: Uint8Array, questionEnd: number, rcode: number, options: { tc?: boolean } = {}): Buffer {
  const hasQuestion = questionEnd > HEADER;
  const reply = Buffer.alloc(hasQuestion ? questionEnd : HEADER);
  reply[0] = query[0]!;
  reply[1] = query[1]!;
  const rd = query[2]! & 0x01;
  reply[2] = 0x80 | (query[2]! & 0x78) | (options.tc ? 0x02 : 0) | rd;
  reply[3] = 0x80 | (rcode & 0xf);
  reply.writeUInt16BE(hasQuestion ? 1 : 0, 4);
  if (hasQuestion) Buffer.from(query.buffer, query.byteOffset + HEADER, questionEnd - HEADER).copy(reply, HEADER);
  return reply;
}

/** A standard recursive query for one name (tests, benches and probes). */
export function buildQuery(name: string, type: number, id: number, options: { edns?: number } = {}): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter((label) => label.length > 0);
  const parts = labels.map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'latin1')]));
  const header = Buffer.alloc(HEADER);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(options.edns ? 1 : 0, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  const opt = options.edns ? Buffer.from([0, 0, TYPE.OPT, options.edns >> 8, options.edns & 0xff, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  return Buffer.concat([header, ...parts, Buffer.from([0]), tail, opt]);
}

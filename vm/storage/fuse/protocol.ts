/**
 * The FUSE kernel protocol (include/uapi/linux/fuse.h, protocol 7.x) as far as a server of plain
 * files in one directory needs it: opcodes, flags and the byte layout of each request and reply.
 * All integers are little-endian; structs are padded to 8 bytes.
 */

/** Protocol major version this server speaks. */
export const FUSE_MAJOR = 7;
/** Highest protocol minor version this server knows; the session uses min(kernel, this). */
export const FUSE_MINOR = 38;
/** Node id of the mount's root directory. */
export const ROOT_ID = 1;

/** Request opcodes (enum fuse_opcode). */
export const OP = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  GETXATTR: 22,
  LISTXATTR: 23,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  SYNCFS: 50,
} as const;

/** INIT flags (fuse_init_in.flags / fuse_init_out.flags). */
export const INIT = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  ASYNC_DIO: 1 << 15,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  INIT_EXT: 1 << 30,
} as const;

/** fuse_open_out.open_flags. */
export const FOPEN = {
  DIRECT_IO: 1 << 0,
  KEEP_CACHE: 1 << 1,
  NOFLUSH: 1 << 5,
  PARALLEL_DIRECT_WRITES: 1 << 6,
} as const;

/** fallocate(2) mode bits the kernel forwards. */
export const FALLOC = { KEEP_SIZE: 0x01, PUNCH_HOLE: 0x02, ZERO_RANGE: 0x10 } as const;

/** fuse_setattr_in.valid bit for a size change. */
export const FATTR_SIZE = 1 << 3;

/** The low bit of `unique` marks an INTERRUPT request. */
export const INT_REQ_BIT = 1n;

/** Linux errno values used in replies. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENOSYS: 38,
  ENODATA: 61,
  EOPNOTSUPP: 95,
} as const;

/** File type bits of st_mode. */
export const S_IFDIR = 0o040000;
/** Regular-file type bits of st_mode. */
export const S_IFREG = 0o100000;

/** Size of struct fuse_in_header. */
export const IN_HEADER = 40;
/** Size of struct fuse_out_header. */
export const OUT_HEADER = 16;
/** Size of struct fuse_attr. */
export const ATTR_SIZE = 88;
/** Size of struct fuse_write_in, after which a WRITE's data starts. */
export const WRITE_IN = 40;

/** A decoded request header plus a view of the bytes after it. */
export interface RequestHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
  /** The request's argument bytes (after the 40-byte header). */
  body: Buffer;
}

/** Decodes the header of one request read from /dev/fuse. */
export function decodeHeader(buf: Buffer): RequestHeader {
  const len = buf.readUInt32LE(0);
  return {
    len,
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeid: Number(buf.readBigUInt64LE(16)),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
    body: buf.subarray(IN_HEADER, len),
  };
}

/** Writes struct fuse_out_header at the start of `buf`. */
export function writeOutHeader(buf: Buffer, len: number, error: number, unique: bigint): void {
  buf.writeUInt32LE(len, 0);
  buf.writeInt32LE(error === 0 ? 0 : -error, 4);
  buf.writeBigUInt64LE(unique, 8);
}

/** The INIT request's arguments. */
export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  flags2: number;
}

/** Decodes struct fuse_init_in. */
export function decodeInit(body: Buffer): InitIn {
  return {
    major: body.readUInt32LE(0),
    minor: body.readUInt32LE(4),
    maxReadahead: body.readUInt32LE(8),
    flags: body.readUInt32LE(12),
    flags2: body.length >= 20 ? body.readUInt32LE(16) : 0,
  };
}

/** What the server answers to INIT. */
export interface InitOut {
  minor: number;
  maxReadahead: number;
  flags: number;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  maxPages: number;
}

/** Encodes struct fuse_init_out (64 bytes). */
export function encodeInit(out: InitOut): Buffer {
  const buf = Buffer.alloc(64);
  buf.writeUInt32LE(FUSE_MAJOR, 0);
  buf.writeUInt32LE(out.minor, 4);
  buf.writeUInt32LE(out.maxReadahead, 8);
  buf.writeUInt32LE(out.flags >>> 0, 12);
  buf.writeUInt16LE(out.maxBackground, 16);
  buf.writeUInt16LE(out.congestionThreshold, 18);
  buf.writeUInt32LE(out.maxWrite, 20);
  buf.writeUInt32LE(1, 24); // time_gran: nanoseconds
  buf.writeUInt16LE(out.maxPages, 28);
  return buf;
}

/** The attributes the server reports for a node. */
export interface Attr {
  ino: number;
  size: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  /** Seconds since the epoch for atime, mtime and ctime. */
  time: number;
  mode: number;
  nlink: number;
  blksize: number;
}

/** Encodes struct fuse_attr at `offset` of `buf`. */
export function writeAttr(buf: Buffer, offset: number, attr: Attr): void {
  buf.writeBigUInt64LE(BigInt(attr.ino), offset);
  buf.writeBigUInt64LE(BigInt(attr.size), offset + 8);
  buf.writeBigUInt64LE(BigInt(attr.blocks), offset + 16);
  for (const at of [24, 32, 40]) buf.writeBigUInt64LE(BigInt(attr.time), offset + at);
  buf.writeUInt32LE(attr.mode, offset + 60);
  buf.writeUInt32LE(attr.nlink, offset + 64);
  buf.writeUInt32LE(attr.blksize, offset + 80);
}

/** Encodes struct fuse_entry_out (LOOKUP reply) with separate name and attribute cache times. */
export function encodeEntry(attr: Attr, entrySeconds: number, attrSeconds: number): Buffer {
  const buf = Buffer.alloc(40 + ATTR_SIZE);
  buf.writeBigUInt64LE(BigInt(attr.ino), 0);
  buf.writeBigUInt64LE(0n, 8);
  buf.writeBigUInt64LE(BigInt(entrySeconds), 16);
  buf.writeBigUInt64LE(BigInt(attrSeconds), 24);
  writeAttr(buf, 40, attr);
  return buf;
}

/** Encodes struct fuse_attr_out (GETATTR / SETATTR reply). */
export function encodeAttrOut(attr: Attr, validSeconds: number): Buffer {
  const buf = Buffer.alloc(16 + ATTR_SIZE);
  buf.writeBigUInt64LE(BigInt(validSeconds), 0);
  writeAttr(buf, 16, attr);
  return buf;
}

/** Encodes struct fuse_open_out. */
export function encodeOpen(fh: number, openFlags: number): Buffer {
  const buf = Buffer.alloc(16);
  buf.writeBigUInt64LE(BigInt(fh), 0);
  buf.writeUInt32LE(openFlags, 8);
  return buf;
}

/** Decoded struct fuse_read_in (also used by READDIR). */
export interface ReadIn {
  fh: number;
  offset: number;
  size: number;
}

/** Decodes struct fuse_read_in. */
export function decodeRead(body: Buffer): ReadIn {
  return { fh: Number(body.readBigUInt64LE(0)), offset: Number(body.readBigUInt64LE(8)), size: body.readUInt32LE(16) };
}

/** Decoded struct fuse_write_in with a view of the data that follows it. */
export interface WriteIn {
  fh: number;
  offset: number;
  data: Buffer;
}

/** Decodes struct fuse_write_in and its payload. */
export function decodeWrite(body: Buffer): WriteIn {
  const size = body.readUInt32LE(16);
  return { fh: Number(body.readBigUInt64LE(0)), offset: Number(body.readBigUInt64LE(8)), data: body.subarray(WRITE_IN, WRITE_IN + size) };
}

/** Encodes struct fuse_write_out. */
export function encodeWriteOut(size: number): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeUInt32LE(size, 0);
  return buf;
}

/** Decoded struct fuse_fallocate_in. */
export interface FallocateIn {
  fh: number;
  offset: number;
  length: number;
  mode: number;
}

/** Decodes struct fuse_fallocate_in. */
export function decodeFallocate(body: Buffer): FallocateIn {
  return {
    fh: Number(body.readBigUInt64LE(0)),
    offset: Number(body.readBigUInt64LE(8)),
    length: Number(body.readBigUInt64LE(16)),
    mode: body.readUInt32LE(24),
  };
}

/** Filesystem totals for STATFS, in `bsize` blocks. */
export interface StatFs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
}

/** Encodes struct fuse_statfs_out. */
export function encodeStatfs(st: StatFs): Buffer {
  const buf = Buffer.alloc(80);
  buf.writeBigUInt64LE(BigInt(st.blocks), 0);
  buf.writeBigUInt64LE(BigInt(st.bfree), 8);
  buf.writeBigUInt64LE(BigInt(st.bavail), 16);
  buf.writeBigUInt64LE(BigInt(st.files), 24);
  buf.writeBigUInt64LE(BigInt(st.ffree), 32);
  buf.writeUInt32LE(st.bsize, 40);
  buf.writeUInt32LE(255, 44);
  buf.writeUInt32LE(st.bsize, 48);
  return buf;
}

/** Encodes one struct fuse_dirent (padded to 8 bytes) for READDIR. */
export function encodeDirent(ino: number, nextOffset: number, name: string, type: number): Buffer {
  const nameBytes = Buffer.from(name);
  const size = 24 + nameBytes.length;
  const buf = Buffer.alloc((size + 7) & ~7);
  buf.writeBigUInt64LE(BigInt(ino), 0);
  buf.writeBigUInt64LE(BigInt(nextOffset), 8);
  buf.writeUInt32LE(nameBytes.length, 16);
  buf.writeUInt32LE(type, 20);
  nameBytes.copy(buf, 24);
  return buf;
}

/** Reads the NUL-terminated name of a LOOKUP request. */
export function decodeName(body: Buffer): string {
  const end = body.indexOf(0);
  return body.subarray(0, end < 0 ? body.length : end).toString();
}

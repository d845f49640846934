import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { posix } from 'node:path';
import { agentError, FsError } from '../../vm/index.ts';
import { PeerError } from '../errors.ts';
import { validate, type Schema } from '../schema.ts';
import type { SpriteManager } from '../sprites.ts';
import { sendJson } from './http.ts';

/**
 * What the filesystem routes share: paths as the SDK sends them (relative to `workingDir`), the
 * connection to the sprite's file agent, the shapes its answers must have, and filesystem errors as
 * the SDK reads them.
 */

/** What the filesystem routes work on: the sprite's control connection, woken if it sleeps. */
export type FsSprites = Pick<SpriteManager, 'awake'>;

const MAX_PATH = 4096;

/** A path field: a non-empty string without NUL, at most 4096 characters. */
export const pathSchema: Schema = { type: 'string', minLength: 1, maxLength: MAX_PATH, pattern: '^[^\\u0000]*$', description: 'must not contain NUL' };

/** `path` made absolute against `workingDir` (default /), `..` folded the way the SDK's server does. */
export function resolvePath(path: unknown, workingDir: unknown = '/', field = 'path'): string {
  const problem = validate(pathSchema, path, field) ?? validate(pathSchema, workingDir, 'workingDir');
  if (problem) throw new PeerError('ERR_BAD_REQUEST', problem);
  if (!(workingDir as string).startsWith('/')) throw new PeerError('ERR_BAD_REQUEST', 'workingDir must be an absolute path');
  return posix.resolve(workingDir as string, path as string);
}

/** The query's `path` resolved against its `workingDir`. */
export function queryPath(url: URL): string {
  return resolvePath(url.searchParams.get('path') ?? undefined, url.searchParams.get('workingDir') ?? '/');
}

/** A mode as the SDK sends it: octal digits ("0644"), at most 07777. */
export function parseMode(value: unknown): number {
  const mode = typeof value === 'string' && /^[0-7]{1,5}$/.test(value) ? parseInt(value, 8) : NaN;
  if (!(mode <= 0o7777)) throw new PeerError('ERR_BAD_REQUEST', 'mode must be octal digits, at most 7777 (like "0644")');
  return mode;
}

/** A connection to the sprite's file agent, as its user or (`root`) as its root. */
export async function openAgent(sprites: FsSprites, name: string, root: boolean): Promise<Socket> {
  return (await sprites.awake(name)).open({ op: 'fs', root });
}

/** `result` if it fits `schema`; otherwise the agent broke the protocol (ERR_FS_AGENT). */
export function checked<T>(schema: Schema, result: unknown): T {
  const problem = validate(schema, result, 'answer');
  if (problem) throw agentError(`answered something malformed: ${problem}`);
  return result as T;
}

const count: Schema = { type: 'integer', minimum: 0 };
const mode: Schema = { type: 'string', pattern: '^[0-7]{4}$' };
const object = (properties: Record<string, Schema>, optional: string[] = []): Schema => ({
  type: 'object', properties, required: Object.keys(properties).filter((key) => !optional.includes(key)), additionalProperties: false,
});

/** The shapes of the agent's answers, by operation. */
export const ANSWERS = {
  read: object({ size: count }),
  write: object({ path: pathSchema, size: count, mode }),
  list: object({ path: pathSchema }),
  entry: object({
    name: pathSchema, path: pathSchema, type: { type: 'string', pattern: '^(file|directory|symlink|fifo|socket|char|block)$' },
    size: count, mode, modTime: { type: 'string', maxLength: 40 }, isDir: { type: 'boolean' },
  }),
  delete: object({ deleted: { type: 'array', items: pathSchema, maxItems: 1 }, count }),
  rename: object({ source: pathSchema, dest: pathSchema }),
  copy: object({ source: pathSchema, dest: pathSchema, count }),
  chmod: object({ path: pathSchema, mode, count }),
  chown: object({ path: pathSchema, uid: count, gid: count, count }, ['uid', 'gid']),
  watch: object({ paths: { type: 'array', items: pathSchema, maxItems: 64 } }),
} satisfies Record<string, Schema>;

// Statuses of filesystem errors; the SDK's rm({force}) relies on 404 for ENOENT.
const STATUS: Record<string, number> = {
  ENOENT: 404, EEXIST: 409, ENOTEMPTY: 409, EBUSY: 409, EISDIR: 400, ENOTDIR: 400, EINVAL: 400, ELOOP: 400,
  ENAMETOOLONG: 400, EXDEV: 400, EACCES: 403, EPERM: 403, EROFS: 403, EFBIG: 413, ENOSPC: 507, EDQUOT: 507,
};

/** The status a filesystem error answers with. */
export function fsStatus(code: string): number {
  return STATUS[code] ?? 500;
}

/**
 * Runs a filesystem route: a filesystem error answers `{error: message, code, path}` (the SDK's
 * FsErrorResponse), anything else goes to the server's error handling. Either way the request
 * body is read to its end first, so a client still uploading gets the answer, not a reset.
 */
export function fsRoute<C extends { req: IncomingMessage; res: ServerResponse }>(run: (ctx: C) => Promise<void>): (ctx: C) => Promise<void> {
  return async (ctx) => {
    try {
      await run(ctx);
    } catch (error) {
      await drain(ctx.req);
      if (!(error instanceof FsError) || ctx.res.headersSent) throw error;
      sendJson(ctx.res, fsStatus(error.code), { error: error.message, code: error.code, path: error.path });
    }
  };
}

/** Reads and drops what is left of a request body (stream.finished would also wait for the answer's end). */
function drain(req: IncomingMessage): Promise<void> {
  if (req.readableEnded || req.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    for (const event of ['end', 'close', 'error']) req.once(event, () => resolve());
    req.resume();
  });
}

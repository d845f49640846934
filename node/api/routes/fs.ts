import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { BUFFERED, fsRequest, jsonLines } from '../../../vm/index.ts';
import { PeerError } from '../../errors.ts';
import { validate, type Schema } from '../../schema.ts';
import { ANSWERS, checked, fsRoute, openAgent, parseMode, pathSchema, queryPath, resolvePath, type FsSprites } from '../fs-wire.ts';
import { flag, parseJson, readBody, readJson, sendJson } from '../http.ts';
import { drained } from '../ndjson.ts';
import { NAME, type Route, type RouteContext } from '../router.ts';

const FS = `^/v1/sprites/${NAME}/fs`;

/** Fields every JSON body of these routes may carry. */
const common = { workingDir: pathSchema, asRoot: { type: 'boolean' } } satisfies Record<string, Schema>;
const body = (properties: Record<string, Schema>, required: string[]): Schema => ({
  type: 'object', properties: { ...common, ...properties }, required, additionalProperties: false,
});
const flagSchema: Schema = { type: 'boolean' };
const renameSchema = body({ source: pathSchema, dest: pathSchema }, ['source', 'dest']);
const copySchema = body({ source: pathSchema, dest: pathSchema, recursive: flagSchema, preserveAttrs: flagSchema }, ['source', 'dest']);
const chmodSchema = body({ path: pathSchema, mode: { type: 'string', maxLength: 8 }, recursive: flagSchema }, ['path', 'mode']);
const deleteSchema = body({ path: pathSchema, recursive: flagSchema }, ['path']);

/**
 * The filesystem routes under /v1/sprites/{name}/fs (the watch WebSocket is fs-watch.ts). Every
 * operation runs inside the sprite, in its file agent, as the sprite's user or with `asRoot` as its
 * root; bodies and files stream both ways.
 */
export function fsRoutes(sprites: FsSprites): Route[] {
  /** One request to the agent whose answer is all there is: its result, checked against `schema`. */
  const call = async (ctx: RouteContext, root: boolean, request: object, schema: Schema): Promise<void> => {
    const socket = await openAgent(sprites, ctx.params.name!, root);
    try {
      sendJson(ctx.res, 200, checked(schema, (await fsRequest(socket, request)).result));
    } finally {
      socket.destroy();
    }
  };
  return [
    {
      method: 'GET', auth: 'org', pattern: new RegExp(`${FS}/read$`), uses: true,
      handler: fsRoute(async ({ res, params, url }) => {
        const path = queryPath(url);
        const socket = await openAgent(sprites, params.name!, flag(url, 'asRoot'));
        try {
          const { size } = checked<{ size: number }>(ANSWERS.read, (await fsRequest(socket, { op: 'read', path })).result);
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
          await sendExactly(socket, res, size);
        } finally {
          socket.destroy();
        }
      }),
    },
    {
      method: 'PUT', auth: 'org', pattern: new RegExp(`${FS}/write$`), uses: true,
      handler: fsRoute(async ({ req, res, params, url }) => {
        const path = queryPath(url);
        const mode = url.searchParams.has('mode') ? parseMode(url.searchParams.get('mode')) : undefined;
        // `mkdir` is the name Sprites' docs give the flag; the SDKs send `mkdirParents`.
        const mkdirParents = flag(url, 'mkdirParents') || flag(url, 'mkdir');
        const socket = await openAgent(sprites, params.name!, flag(url, 'asRoot'));
        try {
          const { result, upload } = await fsRequest(socket, { op: 'write', path, mode, mkdirParents }, req);
          await upload!.done;
          sendJson(res, 200, checked(ANSWERS.write, result));
        } finally {
          socket.destroy();
        }
      }),
    },
    {
      method: 'GET', auth: 'org', pattern: new RegExp(`${FS}/list$`), uses: true,
      handler: fsRoute(async ({ res, params, url }) => {
        const path = queryPath(url);
        const pattern = url.searchParams.get('pattern') ?? undefined;
        if (pattern !== undefined && (pattern.length === 0 || pattern.length > 1024)) throw new PeerError('ERR_BAD_REQUEST', 'pattern must be 1-1024 characters');
        const socket = await openAgent(sprites, params.name!, flag(url, 'asRoot'));
        try {
          const { result } = await fsRequest(socket, { op: 'list', path, recursive: flag(url, 'recursive'), pattern });
          checked(ANSWERS.list, result);
          await sendEntries(socket, res, path);
        } finally {
          socket.destroy();
        }
      }),
    },
    {
      method: 'DELETE', auth: 'org', pattern: new RegExp(`${FS}/delete$`), uses: true,
      handler: fsRoute(async (ctx) => {
        // The SDKs send the query; Sprites' docs describe a JSON body: both work.
        const raw = await readBody(ctx.req);
        const fields = raw.length > 0 ? parseJson<{ path: string; workingDir?: string; recursive?: boolean; asRoot?: boolean }>(raw, deleteSchema) : undefined;
        const { url } = ctx;
        const path = fields ? resolvePath(fields.path, fields.workingDir) : queryPath(url);
        const recursive = fields?.recursive ?? flag(url, 'recursive');
        await call(ctx, fields?.asRoot ?? flag(url, 'asRoot'), { op: 'delete', path, recursive }, ANSWERS.delete);
      }),
    },
    {
      method: 'POST', auth: 'org', pattern: new RegExp(`${FS}/rename$`), uses: true,
      handler: fsRoute(async (ctx) => {
        const fields = await readJson<{ source: string; dest: string; workingDir?: string; asRoot?: boolean }>(ctx.req, renameSchema);
        const request = { op: 'rename', source: resolvePath(fields.source, fields.workingDir, 'source'), dest: resolvePath(fields.dest, fields.workingDir, 'dest') };
        await call(ctx, fields.asRoot === true, request, ANSWERS.rename);
      }),
    },
    {
      method: 'POST', auth: 'org', pattern: new RegExp(`${FS}/copy$`), uses: true,
      handler: fsRoute(async (ctx) => {
        const fields = await readJson<{ source: string; dest: string; workingDir?: string; recursive?: boolean; preserveAttrs?: boolean; asRoot?: boolean }>(ctx.req, copySchema);
        const request = {
          op: 'copy', source: resolvePath(fields.source, fields.workingDir, 'source'), dest: resolvePath(fields.dest, fields.workingDir, 'dest'),
          recursive: fields.recursive === true, preserveAttrs: fields.preserveAttrs === true,
        };
        await call(ctx, fields.asRoot === true, request, ANSWERS.copy);
      }),
    },
    {
      method: 'POST', auth: 'org', pattern: new RegExp(`${FS}/chmod$`), uses: true,
      handler: fsRoute(async (ctx) => {
        const fields = await readJson<{ path: string; mode: string; workingDir?: string; recursive?: boolean; asRoot?: boolean }>(ctx.req, chmodSchema);
        const request = { op: 'chmod', path: resolvePath(fields.path, fields.workingDir), mode: parseMode(fields.mode), recursive: fields.recursive === true };
        await call(ctx, fields.asRoot === true, request, ANSWERS.chmod);
      }),
    },
    {
      method: 'POST', auth: 'org', pattern: new RegExp(`${FS}/chown$`), uses: true,
      handler: fsRoute(async (ctx) => {
        const fields = parseChown(await readBody(ctx.req));
        const request = { op: 'chown', path: resolvePath(fields.path, fields.workingDir), uid: fields.uid, gid: fields.gid, recursive: fields.recursive === true };
        await call(ctx, fields.asRoot === true, request, ANSWERS.chown);
      }),
    },
  ];
}

const chownSchema = body({ path: pathSchema, recursive: flagSchema }, ['path']);
type Id = number | string | undefined;

/** A chown body: `uid` and `gid` are each a number or a user/group name, and one is needed. */
function parseChown(raw: Buffer): { path: string; workingDir?: string; uid: Id; gid: Id; recursive?: boolean; asRoot?: boolean } {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8') || '{}');
  } catch {
    throw new PeerError('ERR_BAD_REQUEST', 'body is not valid JSON');
  }
  const { uid, gid, ...rest } = (typeof value === 'object' && value !== null ? value : { value }) as Record<string, unknown>;
  const problem = validate(chownSchema, rest);
  if (problem) throw new PeerError('ERR_BAD_REQUEST', problem);
  const id = (field: string, value: unknown): Id => {
    if (value === undefined || value === null) return undefined;
    if (Number.isInteger(value) && (value as number) >= 0 && (value as number) < 0xffffffff) return value as number;
    if (typeof value === 'string' && /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/.test(value)) return value;
    throw new PeerError('ERR_BAD_REQUEST', `body.${field} must be a numeric id or a user or group name`);
  };
  const ids = { uid: id('uid', uid), gid: id('gid', gid) };
  if (ids.uid === undefined && ids.gid === undefined) throw new PeerError('ERR_BAD_REQUEST', 'uid or gid is required');
  return { ...(rest as { path: string }), ...ids };
}

/** Pipes exactly `size` bytes from the agent to the client; more or fewer cuts the answer (the client sees it short). */
function sendExactly(socket: Socket, res: ServerResponse, size: number): Promise<void> {
  return new Promise((resolve) => {
    let left = size;
    let done = false;
    const stop = (): void => {
      if (done) return;
      done = true;
      socket.destroy();
      if (left === 0) res.end();
      else res.destroy();
      resolve();
    };
    if (size === 0) return stop();
    socket.on('data', (chunk: Buffer) => {
      if (chunk.length > left) return stop();
      left -= chunk.length;
      res.write(chunk);
      // As the upload does (vm/fs-client.ts): paused past BUFFERED, not after every chunk.
      if (res.writableLength > BUFFERED && !socket.isPaused()) {
        socket.pause();
        res.once('drain', () => socket.resume());
      }
      if (left === 0) stop();
    });
    socket.once('close', stop);
    res.once('close', stop);
    socket.resume();
  });
}

/** Streams the agent's entries as `{path, entries, count}`, each entry checked. */
async function sendEntries(socket: Socket, res: ServerResponse, path: string): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.write(`{"path":${JSON.stringify(path)},"entries":[`);
  let count = 0;
  for await (const line of jsonLines(socket)) {
    const e = checked<Record<string, unknown>>(ANSWERS.entry, line);
    const entry = { name: e.name, path: e.path, type: e.type, size: e.size, mode: e.mode, modTime: e.modTime, isDir: e.isDir };
    if (!res.write(`${count === 0 ? '' : ','}${JSON.stringify(entry)}`)) await drained(res);
    if (res.destroyed) return;
    count += 1;
  }
  res.end(`],"count":${count}}`);
}

/**
 * The sprite agent: a long-lived process inside a sprite that serves the filesystem API and forks
 * execs without a terminal. sprite-init starts it with `runc exec` as the sprite's user (or as its
 * root, for files only), so every path is resolved by the kernel inside the sprite's own mount
 * namespace and root (no `..`, symlink or /proc trick reaches outside) and every command it forks
 * is in the container as a `runc exec` child would be. It runs on the Node runtime at /.sprite/bin
 * and needs nothing from the sprite's image.
 *
 * stdin: a first line `{"socket", "secret"}` (an abstract Unix socket in the sprite's network
 * namespace where sprite-init listens, and the hex secret that proves this is the agent it started),
 * then one `dial <token> <kind>` line per request: the agent connects, sends the secret's bytes and
 * the token's (which request this connection is for), then serves one file request (`fs`, see
 * wire.ts) or one exec (`exec`, see exec.ts), or nothing (`ping`: it is up). The agent exits when
 * stdin closes.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { execs, serveExec } from './exec.ts';
import { answer, answered, listPath, readFile, writeFile } from './ops.ts';
import { chmodPath, chownPath, copyPath, deletePath, renamePath } from './tree.ts';
import { watchPaths } from './watch.ts';
import { headerFrame, RequestReader } from './wire.ts';

type Request = Record<string, unknown> & { op: string };
type Op = (request: any, reader: RequestReader, socket: net.Socket) => Promise<void>;

/** An operation with one result and nothing after it. */
const once = (run: (request: any) => Promise<object>): Op => async (request, _reader, socket) => {
  answer(socket, await run(request));
  socket.end();
};

const OPS: Record<string, Op> = {
  read: (request, _reader, socket) => readFile(request, socket),
  write: writeFile,
  list: (request, _reader, socket) => listPath(request, socket),
  watch: (request, _reader, socket) => watchPaths(request, socket),
  delete: once(deletePath),
  rename: once(renamePath),
  copy: once(copyPath),
  chmod: once(chmodPath),
  chown: once(chownPath),
};

async function serve(socket: net.Socket): Promise<void> {
  const reader = new RequestReader(socket);
  let request: Request | undefined;
  try {
    request = checked(await reader.header);
    await OPS[request.op]!(request, reader, socket);
  } catch (error) {
    if (answered.has(socket) || socket.destroyed) return void socket.destroy();
    const { code, message, path } = error as NodeJS.ErrnoException;
    const known = typeof code === 'string' && /^E[A-Z0-9]{1,20}$/.test(code);
    socket.end(headerFrame({
      ok: false,
      error: { code: known ? code : 'EIO', message: String(message).slice(0, 1024), path: path ?? request?.path ?? request?.source ?? null },
    }));
  }
}

/** The request, if it names a known operation and its paths are absolute. */
function checked(value: unknown): Request {
  const request = value as Request;
  if (typeof request?.op !== 'string' || !Object.hasOwn(OPS, request.op)) throw Object.assign(new Error(`unknown operation ${String(request?.op)}`), { code: 'EINVAL' });
  const paths = [request.path, request.source, request.dest, ...(Array.isArray(request.paths) ? request.paths : [])];
  for (const path of paths) {
    if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/') || path.includes('\0'))) {
      throw Object.assign(new Error('paths must be absolute'), { code: 'EINVAL' });
    }
  }
  return request;
}

// Its own name, not `node`: a user's `pkill node` inside the sprite must not cut the exec it runs in.
process.title = 'sprite-agent';

let target: { socket: string; secret: Buffer } | undefined;
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!target) {
    const hello = JSON.parse(line) as { socket: string; secret: string };
    target = { socket: hello.socket, secret: Buffer.from(hello.secret, 'hex') };
    return;
  }
  const [word, token = '', kind] = line.split(' ');
  if (word !== 'dial' || !/^[0-9a-f]{32}$/.test(token)) return;
  const socket = net.connect(target.socket);
  socket.on('error', () => socket.destroy());
  socket.write(Buffer.concat([target.secret, Buffer.from(token, 'hex')]));
  if (kind === 'fs') void serve(socket);
  else if (kind === 'exec') serveExec(socket);
  else socket.end();
});
lines.on('close', () => process.exit(0));
// The sprite stops: sprite-init has signalled the commands; their statuses go out before the agent does.
process.on('SIGTERM', () => {
  execs.idle = () => process.exit(0);
  if (execs.running === 0) process.exit(0);
});

import net from 'node:net';
import { chmodSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ControlClient } from '../control.ts';
import type { InsideCheckpoint } from '../requests.ts';
import type { CheckpointDir } from './checkpoints.ts';
import { coded } from './errors.ts';
import { parseServiceSpec } from './service-spec.ts';
import type { ServiceManager } from './services.ts';

/** What `sprite-env info` reports. */
export interface SpriteInfo {
  name: string | null;
  httpPort: number;
  version: string;
}

/** What the inside API serves from. */
export interface InsideApiParts {
  services: ServiceManager;
  info: () => SpriteInfo;
  /** The peer's request socket; without it, checkpoint requests fail. */
  peer: ControlClient | undefined;
  checkpoints: CheckpointDir;
}

/** Checkpoints take a filesystem freeze and a flush to the object store: allow for a slow store. */
const CHECKPOINT_TIMEOUT_MS = 120_000;

/**
 * The API that user code reaches at /.sprite/api.sock: one JSON request per line, one JSON
 * answer per line (`{ok: true, result}` or `{ok: false, error: {code, message}}`), so it is
 * usable with nothing more than a shell and `nc -U`.
 */
export function serveInsideApi(path: string, parts: InsideApiParts): net.Server {
  const server = net.createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      if (buffered.length > 1024 * 1024) socket.destroy();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        void answer(line, parts).then((reply) => socket.write(`${JSON.stringify(reply)}\n`));
      }
    });
  });
  // The sprite's root maps to an unprivileged host uid, so the socket must be world-writable;
  // only this sprite's mount namespace can see it.
  server.listen(path, () => chmodSync(path, 0o666));
  return server;
}

async function answer(line: string, { services, info, peer, checkpoints }: InsideApiParts): Promise<object> {
  try {
    const request = JSON.parse(line) as { op?: unknown; name?: unknown; spec?: unknown; comment?: unknown };
    const name = typeof request.name === 'string' ? request.name : '';
    switch (request.op) {
      case 'info':
        return { ok: true, result: info() };
      case 'services.list':
        return { ok: true, result: services.list() };
      case 'services.get':
        return { ok: true, result: services.get(name) };
      case 'services.create':
        return { ok: true, result: await services.put(parseServiceSpec(request.spec)) };
      case 'services.delete':
        await services.remove(name);
        return { ok: true, result: null };
      case 'services.logs':
        return { ok: true, result: await readFile(services.logPath(name), 'utf8').catch(() => '') };
      case 'checkpoints.create': {
        // The peer validates the comment: it must not trust what comes from in here.
        const created = await platform(peer).call<InsideCheckpoint>({ op: 'checkpoints.create', comment: request.comment ?? '' }, CHECKPOINT_TIMEOUT_MS);
        return { ok: true, result: { ...created, path: checkpoints.list().get(created.id) ?? null } };
      }
      case 'checkpoints.list': {
        const mounted = checkpoints.list();
        const listed = await platform(peer).call<InsideCheckpoint[]>({ op: 'checkpoints.list' });
        return { ok: true, result: listed.map((c) => ({ ...c, path: mounted.get(c.id) ?? null })) };
      }
      default:
        return { ok: false, error: { code: 'ERR_BAD_REQUEST', message: `unknown op ${String(request.op)}` } };
    }
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'ERR_BAD_REQUEST';
    return { ok: false, error: { code: code.startsWith('ERR_') ? code : 'ERR_INTERNAL', message: (error as Error).message } };
  }
}

function platform(peer: ControlClient | undefined): ControlClient {
  if (!peer) throw coded('ERR_SPRITE_UNAVAILABLE', 'this sprite has no link to its peer');
  return peer;
}

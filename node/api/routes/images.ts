import { PeerError } from '../../errors.ts';
import { errorJson, toApiError } from '../errors.ts';
import { VM_DEFAULTS } from '../../../vm/index.ts';
import type { ImageManager } from '../../images.ts';
import type { Schema } from '../../schema.ts';
import type { RootSource } from '../../../vm/index.ts';
import { flag, readJson, sendJson } from '../http.ts';
import type { Route } from '../router.ts';

const IMAGE = '(?<image>[^/]+)';

const buildSchema: Schema = {
  type: 'object',
  required: ['name', 'from'],
  properties: {
    // The name's rule is checked by the image manager, which answers ERR_BAD_NAME.
    name: { type: 'string', maxLength: 256 },
    from: { type: 'string', pattern: '^(busybox|dir|tar|debian)$', description: 'must be busybox, dir, tar or debian' },
    /** For dir and tar: an absolute path on the peer's host. */
    path: { type: 'string', minLength: 1, maxLength: 4096 },
    suite: { type: 'string', maxLength: 32 },
    mirror: { type: 'string', maxLength: 1024 },
  },
  additionalProperties: false,
};

interface BuildBody {
  name: string;
  from: RootSource['kind'];
  path?: string;
  suite?: string;
  mirror?: string;
}

function toSource(body: BuildBody): RootSource {
  const needsPath = body.from === 'dir' || body.from === 'tar';
  if (needsPath !== (body.path !== undefined)) throw new PeerError('ERR_BAD_REQUEST', needsPath ? `body.path is required with from=${body.from}` : `body.path only goes with from=dir or from=tar`);
  if (body.from !== 'debian' && (body.suite !== undefined || body.mirror !== undefined)) throw new PeerError('ERR_BAD_REQUEST', 'body.suite and body.mirror only go with from=debian');
  switch (body.from) {
    case 'busybox': return { kind: 'busybox' };
    case 'dir': return { kind: 'dir', path: body.path! };
    case 'tar': return { kind: 'tar', path: body.path! };
    // images.check() validates the suite, as for every caller of the image manager.
    case 'debian': return { kind: 'debian', suite: body.suite ?? VM_DEFAULTS.debian.suite, mirror: body.mirror ?? VM_DEFAULTS.debian.mirror };
  }
}

/**
 * Routes under /v1/images. Images are shared by the whole mesh and a build from a path reads the
 * peer's host: building and deleting take an admin token; any token lists them and creates sprites from them.
 */
export function imageRoutes(images: ImageManager): Route[] {
  return [
    {
      method: 'POST',
      pattern: /^\/v1\/images$/,
      auth: 'admin',
      handler: async ({ req, res, url }) => {
        const body = await readJson<BuildBody>(req, buildSchema);
        const source = toSource(body);
        // Bad input answers with its status; only a build that starts streams.
        await images.check(body.name, source);
        if (!flag(url, 'progress')) return sendJson(res, 201, await images.build(body.name, source));
        // Progress as NDJSON: `{"progress": line, "percent"?: n}` ..., then `{"image": ...}` or `{"error": code, "message": text}`.
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        const line = (value: unknown): void => void res.write(`${JSON.stringify(value)}\n`);
        try {
          line({ image: await images.build(body.name, source, (text, percent) => line({ progress: text, percent })) });
        } catch (error) {
          line(errorJson(toApiError(error)));
        }
        res.end();
      },
    },
    { method: 'GET', pattern: /^\/v1\/images$/, auth: 'token', handler: ({ res }) => sendJson(res, 200, { images: images.list() }) },
    { method: 'GET', pattern: new RegExp(`^/v1/images/${IMAGE}$`), auth: 'token', handler: ({ res, params }) => sendJson(res, 200, images.get(params.image!)) },
    {
      method: 'DELETE',
      pattern: new RegExp(`^/v1/images/${IMAGE}$`),
      auth: 'admin',
      handler: async ({ res, params }) => {
        await images.delete(params.image!);
        res.writeHead(204).end();
      },
    },
  ];
}

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startBackend, type StoreBackend } from './helpers.ts';

/**
 * fauxqs behind a layer that enforces `If-None-Match: *` and `If-Match` on PutObject, as S3 does.
 *
 * Why a layer and not another server: no S3 server the tests can install enforces conditional
 * writes. fauxqs 2.4.1 (the project's S3 test server) reads the headers only on GetObject and
 * RenameObject; s3rver 3.7.1 and @20minutes/s3rver 5.0.0 only on GetObject; @push.rocks/smarts3
 * 2.2.7 not at all; MinIO and moto are not packaged for this machine, and Ceph's radosgw needs a
 * cluster. The layer does only the conditions (under a per-key lock, so two conditional puts of
 * one key are decided one after the other) and passes every request through unchanged otherwise.
 */
export async function startConditionalS3(): Promise<StoreBackend & { refused: () => number }> {
  const inner = await startBackend('s3');
  const upstream = { port: Number(/endpoint=http:\/\/127\.0\.0\.1:(\d+)/.exec(inner.url)![1]) };
  const locks = new Map<string, Promise<void>>();
  let refused = 0;

  const server = http.createServer((req, res) => {
    const conditional = req.method === 'PUT' && (req.headers['if-none-match'] !== undefined || req.headers['if-match'] !== undefined) && !isPart(req.url ?? '');
    if (!conditional) {
      pass(req, res, upstream.port);
      return;
    }
    const key = (req.url ?? '').split('?')[0]!;
    const previous = locks.get(key) ?? Promise.resolve();
    const done = previous.then(async () => {
      const current = await headEtag(upstream.port, key);
      const failure = precondition(req.headers, current);
      if (failure) {
        refused += 1;
        req.resume();
        res.writeHead(failure.status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${failure.code}</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>`);
        return;
      }
      await new Promise<void>((resolve) => {
        res.once('close', resolve);
        pass(req, res, upstream.port, true);
      });
    });
    const settled = done.catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
    });
    locks.set(key, settled);
    void settled.then(() => {
      if (locks.get(key) === settled) locks.delete(key);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name: 's3',
    url: inner.url.replace(`:${upstream.port}`, `:${port}`),
    refused: () => refused,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await inner.stop();
    },
  };
}

/** Multipart part uploads and copies are not conditional in S3. */
function isPart(url: string): boolean {
  return /[?&](partNumber|uploadId)=/.test(url);
}

/** The status S3 answers a conditional put with when its condition fails, or undefined when it holds. */
function precondition(headers: http.IncomingHttpHeaders, current: string | undefined): { status: number; code: string } | undefined {
  const noneMatch = headers['if-none-match'];
  if (noneMatch !== undefined && noneMatch.trim() === '*' && current !== undefined) return { status: 412, code: 'PreconditionFailed' };
  const match = headers['if-match'];
  if (match !== undefined) {
    if (current === undefined) return { status: 404, code: 'NoSuchKey' };
    if (bare(match) !== bare(current)) return { status: 412, code: 'PreconditionFailed' };
  }
  return undefined;
}

function bare(etag: string): string {
  return etag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
}

function headEtag(port: number, path: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'HEAD' }, (res) => {
      res.resume();
      if (res.statusCode === 404) resolve(undefined);
      else if (res.statusCode === 200) resolve(String(res.headers.etag ?? ''));
      else reject(new Error(`HEAD ${path}: ${res.statusCode}`));
    });
    req.once('error', reject);
    req.end();
  });
}

function pass(req: http.IncomingMessage, res: http.ServerResponse, port: number, decided = false): void {
  const headers = { ...req.headers, host: `127.0.0.1:${port}` };
  if (decided) {
    delete headers['if-none-match'];
    delete headers['if-match'];
  }
  const out = http.request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  out.once('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(out);
}

import { isAbsolute } from 'node:path';
import { StorageError } from '../errors.ts';
import { FileObjectStore } from './file.ts';
import type { ObjectStore } from './store.ts';

/**
 * Opens the object store a URL names:
 * - `file:///abs/dir`: a directory (created on first write);
 * - `s3://bucket/prefix?endpoint=http://host:port&region=r`: an S3-protocol server. Credentials
 *   come from the usual AWS environment variables or config files, never from the URL.
 */
export async function openObjectStore(url: string): Promise<ObjectStore> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new StorageError('ERR_STORAGE_CONFIG', `bad object store url ${JSON.stringify(redactUrl(url))}`, { cause: error });
  }
  if (parsed.protocol === 'file:') {
    const dir = decodeURIComponent(parsed.pathname);
    if (parsed.host || !isAbsolute(dir)) throw new StorageError('ERR_STORAGE_CONFIG', `file store url needs an absolute path: ${redactUrl(url)}`);
    return new FileObjectStore(dir.replace(/\/+$/, '') || '/');
  }
  if (parsed.protocol === 's3:') {
    if (parsed.username || parsed.password) {
      throw new StorageError('ERR_STORAGE_CONFIG', 'credentials do not belong in the object store url; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
    }
    const unknown = [...parsed.searchParams.keys()].filter((key) => key !== 'endpoint' && key !== 'region');
    if (unknown.length > 0) throw new StorageError('ERR_STORAGE_CONFIG', `unknown s3 url options: ${unknown.join(', ')}`);
    if (!parsed.hostname) throw new StorageError('ERR_STORAGE_CONFIG', `s3 url needs a bucket: ${redactUrl(url)}`);
    const endpoint = parsed.searchParams.get('endpoint') ?? undefined;
    const region = parsed.searchParams.get('region') ?? undefined;
    // Loaded on demand: the AWS SDK costs tens of MiB that a file:// daemon need not pay.
    const { S3ObjectStore } = await import('./s3.ts');
    return S3ObjectStore.open({
      bucket: parsed.hostname,
      prefix: decodeURIComponent(parsed.pathname).replace(/^\/+|\/+$/g, ''),
      ...(endpoint ? { endpoint } : {}),
      ...(region ? { region } : {}),
    });
  }
  throw new StorageError('ERR_STORAGE_CONFIG', `unsupported object store url scheme ${parsed.protocol}`);
}

/** The URL without user info or secrets in its query, safe for logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@]*@/, '//').replace(/([?&](?:secret|token|key|password)[^=]*=)[^&]*/gi, '$1***');
}

import { randomBytes } from 'node:crypto';
import {
  DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { StorageError } from '../errors.ts';
import type { ObjectInfo, ObjectStore, PutOptions, StoredObject } from './store.ts';

/** Where an S3 store lives; credentials never appear here (they come from the AWS environment). */
export interface S3StoreInit {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash ('' for none). */
  prefix: string;
  /** Endpoint URL for S3-compatible servers (MinIO, R2, fauxqs); AWS when absent. */
  endpoint?: string;
  /** @default 'us-east-1' */
  region?: string;
  /** Give up on one HTTP request after this long. @default 30000 */
  requestTimeoutMs?: number;
  /** Attempts per request, including the first. @default 3 */
  maxAttempts?: number;
}

/**
 * An S3-protocol object store via @aws-sdk/client-s3: path-style addressing, and checksums only
 * when the operation requires them (third-party servers often reject the SDK's default trailers).
 * Whether the server honours If-None-Match is detected once by {@link S3ObjectStore.open}.
 */
export class S3ObjectStore implements ObjectStore {
  readonly url: string;
  #conditional = false;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;

  private constructor(init: S3StoreInit) {
    this.#bucket = init.bucket;
    this.#prefix = init.prefix ? `${init.prefix}/` : '';
    const query = init.endpoint ? `?endpoint=${encodeURIComponent(init.endpoint)}` : '';
    this.url = `s3://${init.bucket}/${init.prefix}${query}`;
    const config: S3ClientConfig = {
      region: init.region ?? 'us-east-1',
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: init.maxAttempts ?? 3,
      requestHandler: { requestTimeout: init.requestTimeoutMs ?? 30_000, connectionTimeout: 5_000 },
    };
    if (init.endpoint) config.endpoint = init.endpoint;
    this.#client = new S3Client(config);
  }

  /** Opens the store and probes once whether conditional writes are enforced. */
  static async open(init: S3StoreInit): Promise<S3ObjectStore> {
    const store = new S3ObjectStore(init);
    await store.#probe();
    return store;
  }

  get conditionalWrites(): boolean {
    return this.#conditional;
  }

  async get(key: string): Promise<StoredObject> {
    try {
      const out = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
      const body = Buffer.from(await out.Body!.transformToByteArray());
      return { body, etag: out.ETag ?? '' };
    } catch (error) {
      throw mapError(error, 'get', key);
    }
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<{ etag: string }> {
    try {
      const out = await this.#client.send(new PutObjectCommand({
        Bucket: this.#bucket,
        Key: this.#prefix + key,
        Body: body,
        ContentLength: body.length,
        ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        ...(options.ifMatch !== undefined ? { IfMatch: options.ifMatch } : {}),
      }));
      return { etag: out.ETag ?? '' };
    } catch (error) {
      throw mapError(error, 'put', key);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }));
    } catch (error) {
      const mapped = mapError(error, 'delete', key);
      if (mapped.code !== 'ERR_OBJECT_NOT_FOUND') throw mapped;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#prefix + prefix, ContinuationToken: token }));
      } catch (error) {
        throw mapError(error, 'list', prefix);
      }
      for (const item of out.Contents ?? []) {
        if (!item.Key) continue;
        yield { key: item.Key.slice(this.#prefix.length), size: item.Size ?? 0, modified: item.LastModified?.getTime() ?? 0 };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }

  async #probe(): Promise<void> {
    const key = `.probe/${randomBytes(8).toString('hex')}`;
    const body = Buffer.from('probe');
    await this.put(key, body, { ifNoneMatch: true });
    try {
      await this.put(key, body, { ifNoneMatch: true });
      this.#conditional = false;
    } catch (error) {
      if ((error as StorageError).code !== 'ERR_PRECONDITION_FAILED') throw error;
      this.#conditional = true;
    } finally {
      await this.delete(key).catch(() => undefined);
    }
  }
}

function mapError(error: unknown, op: string, key: string): StorageError {
  const name = (error as { name?: string }).name ?? '';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const fields = { key, status };
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new StorageError('ERR_OBJECT_NOT_FOUND', `${op} ${key}: not found`, { cause: error, fields });
  }
  if (name === 'PreconditionFailed' || name === 'ConditionalRequestConflict' || status === 412 || status === 409) {
    return new StorageError('ERR_PRECONDITION_FAILED', `${op} ${key}: precondition failed`, { cause: error, fields });
  }
  return new StorageError('ERR_STORE_UNAVAILABLE', `${op} ${key}: ${(error as Error).message ?? name}`, { cause: error, fields });
}

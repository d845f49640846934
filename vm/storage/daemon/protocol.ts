import { StorageError } from '../errors.ts';
import type { StorageService, StorageServiceInit } from './service.ts';

/** The daemon's configuration: the service options minus the logger (JSON on its command line). */
export type DaemonConfig = Omit<StorageServiceInit, 'logger'>;

/** One request to the daemon. */
export interface DaemonRequest {
  id: number;
  op: DaemonOp;
  args: Record<string, unknown>;
}

/** One answer: a value or a serialized storage error. */
export interface DaemonReply {
  id: number;
  value?: unknown;
  error?: { code: string; message: string; fields: Record<string, unknown> };
}

/** Operations the daemon serves (each maps to a StorageService method). */
export type DaemonOp =
  | 'create' | 'createFrom' | 'ensureImage' | 'importImage' | 'attach' | 'detach' | 'mount' | 'unmount' | 'mountCheckpoint' | 'unmountCheckpoint'
  | 'attachCheckpoint' | 'autoclearCheckpoint'
  | 'checkpoint' | 'checkpoints' | 'usage' | 'restore' | 'deleteCheckpoint' | 'remove' | 'forget' | 'idleVolumes' | 'flush' | 'gc' | 'stats' | 'stop';

/** Dispatches one request to the service, checking the arguments it needs. */
export async function handleRequest(service: StorageService, request: DaemonRequest): Promise<unknown> {
  const args = request.args ?? {};
  const str = (name: string): string => {
    const value = args[name];
    if (typeof value !== 'string' || value === '') throw new StorageError('ERR_STORAGE_CONFIG', `${request.op}: ${name} must be a non-empty string`);
    return value;
  };
  const opt = <T>(name: string, type: 'string' | 'number' | 'boolean'): T | undefined => {
    const value = args[name];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== type) throw new StorageError('ERR_STORAGE_CONFIG', `${request.op}: ${name} must be a ${type}`);
    return value as T;
  };
  switch (request.op) {
    case 'create': {
      const size = opt<number>('size', 'number');
      if (size === undefined) throw new StorageError('ERR_STORAGE_CONFIG', 'create: size is required');
      const unitSize = opt<number>('unitSize', 'number');
      return service.create(str('id'), { size, ...(unitSize ? { unitSize } : {}), format: opt<boolean>('format', 'boolean') ?? false });
    }
    case 'createFrom': {
      const image = opt<string>('image', 'string');
      const volume = opt<string>('volume', 'string');
      const checkpoint = opt<string>('checkpoint', 'string');
      return service.createFrom(str('id'), { ...(image ? { image } : {}), ...(volume ? { volume } : {}), ...(checkpoint ? { checkpoint } : {}) });
    }
    case 'ensureImage': return service.ensureImage(str('file'));
    case 'importImage': return service.importImage(str('id'), str('file'));
    case 'attach': return service.attach(str('id'), { force: opt<boolean>('force', 'boolean') ?? false });
    case 'detach': return service.detach(str('id'));
    case 'mount': return service.mount(str('id'), str('target'), { force: opt<boolean>('force', 'boolean') ?? false });
    case 'unmount': return service.unmount(str('id'));
    case 'mountCheckpoint': return service.mountCheckpoint(str('id'), str('checkpoint'), str('target'));
    case 'unmountCheckpoint': {
      const waitMs = opt<number>('waitMs', 'number');
      return service.unmountCheckpoint(str('id'), str('checkpoint'), waitMs === undefined ? {} : { waitMs });
    }
    case 'attachCheckpoint': return service.attachCheckpoint(str('id'), str('checkpoint'));
    case 'autoclearCheckpoint': return service.autoclearCheckpoint(str('id'), str('checkpoint'));
    case 'checkpoint': return service.checkpoint(str('id'), opt<string>('comment', 'string') ?? '');
    case 'checkpoints': return service.checkpoints(str('id'));
    case 'usage': return service.usage(str('id'));
    case 'restore': return service.restore(str('id'), str('checkpoint'));
    case 'deleteCheckpoint': return service.deleteCheckpoint(str('id'), str('checkpoint'));
    case 'remove': return service.remove(str('id'));
    case 'forget': return service.forget(str('id'));
    case 'idleVolumes': {
      const idleMs = opt<number>('idleMs', 'number');
      if (idleMs === undefined || !(idleMs >= 0)) throw new StorageError('ERR_STORAGE_CONFIG', 'idleVolumes: idleMs must be a number >= 0');
      return service.idleVolumes(str('prefix'), idleMs);
    }
    case 'flush': return service.flush(str('id'));
    case 'gc': {
      const graceMs = opt<number>('graceMs', 'number');
      return service.gc({ ...(graceMs !== undefined ? { graceMs } : {}), dryRun: opt<boolean>('dryRun', 'boolean') ?? false });
    }
    case 'stats': return service.stats();
    default: throw new StorageError('ERR_DAEMON', `unknown operation ${String(request.op)}`);
  }
}

import { DEVICE_DEFAULTS } from '../defaults.ts';
import { StorageError } from '../errors.ts';
import type { DaemonConfig } from './protocol.ts';

const NUMBERS = ['unitSize', 'cacheBytes', 'leaseTtlMs', 'leaseCheckMs', 'snapshotEvery', 'readers', 'startTimeoutMs'] as const;
const STRINGS = ['dataDir', 'objectStore', 'owner', 'logFile'] as const;

/**
 * Checks a daemon configuration once, before anything starts: known keys only (in the device
 * section too), the right types, positive numbers; returns it frozen. Fails with
 * ERR_STORAGE_CONFIG naming the first problem.
 */
export function validateConfig<T extends DaemonConfig & { logFile?: string; startTimeoutMs?: number }>(config: T): Readonly<T> {
  const fail = (message: string): never => {
    throw new StorageError('ERR_STORAGE_CONFIG', `storage config: ${message}`);
  };
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined) continue;
    if ((STRINGS as readonly string[]).includes(key)) {
      if (typeof value !== 'string' || value === '') fail(`${key} must be a non-empty string`);
    } else if ((NUMBERS as readonly string[]).includes(key)) {
      if (typeof value !== 'number' || !(value > 0)) fail(`${key} must be a positive number`);
    } else if (key === 'device') {
      if (typeof value !== 'object' || value === null) fail('device must be an object');
      for (const [name, setting] of Object.entries(value as Record<string, unknown>)) {
        if (!(name in DEVICE_DEFAULTS)) fail(`unknown device option ${name}`);
        if (name === 'mode') {
          if (setting !== 'strict' && setting !== 'relaxed') fail('device.mode must be strict or relaxed');
        } else if (typeof setting !== 'number' || setting < 0) {
          fail(`device.${name} must be a number >= 0`);
        }
      }
    } else {
      fail(`unknown option ${key}`);
    }
  }
  if (!config.dataDir) fail('dataDir is required');
  if (!config.objectStore) fail('objectStore is required');
  if (config.device) Object.freeze(config.device);
  return Object.freeze(config);
}

// The storage engine's defaults, in a file with no runtime imports: node/options.ts reads the cache
// budget and dirty limits for the peer's flags and help without loading the engine.
import type { DeviceOptions } from './device/device.ts';

/** Documented defaults of {@link VolumesInit}. */
export const VOLUMES_DEFAULTS = {
  unitSize: 4 * 1024 * 1024,
  cacheBytes: 10 * 1024 ** 3,
  leaseTtlMs: 30_000,
  leaseCheckMs: 1000,
  snapshotEvery: 256,
} as const;

/** Documented defaults of {@link DeviceOptions}. */
export const DEVICE_DEFAULTS: Readonly<DeviceOptions> = Object.freeze({
  mode: 'strict',
  uploadConcurrency: 8,
  softDirtyBytes: 2048 * 1024 * 1024,
  hardDirtyBytes: 4096 * 1024 * 1024,
  settleMs: 250,
  maxDirtyMs: 5000,
  readAheadUnits: 8,
  flushTimeoutMs: 120_000,
  intervalMs: 50,
});

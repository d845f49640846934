/** Durable sprite disks: a FUSE block device over object storage, with checkpoints and clones. */
export { ObjectVolume, ObjectVolumeStore } from './volume.ts';
export { StorageDaemon, type StorageDaemonInit } from './daemon/client.ts';
export type { Attachment, ServiceStats, StorageServiceInit } from './daemon/service.ts';
export { Volumes, parseCheckpointId, type Checkpoint, type VolumeUsage, type VolumesInit } from './volumes.ts';
export { DEVICE_DEFAULTS, VOLUMES_DEFAULTS } from './defaults.ts';
export type { DeviceOptions, DeviceStats } from './device/device.ts';
export { collectGarbage, GC_DEFAULTS, type GcResult } from './gc.ts';
export { openObjectStore, redactUrl } from './store/open.ts';
export type { ObjectStore, ObjectInfo, StoredObject, PutOptions } from './store/store.ts';
export { StorageError, STORAGE_ERROR_CODES, hasCode, type StorageErrorCode } from './errors.ts';
export { createLogger, silentLogger, type Logger } from '../logger.ts';

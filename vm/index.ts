/** The sprite machine: sandboxes, their root disks, and the talk with sprite-init. */
export { Sandbox, sandboxPaths, removeCgroups, type SandboxInit } from './sandbox.ts';
export { ControlClient } from './control.ts';
export { BUFFERED, FsError, fsRequest, jsonLines, agentError, type Upload } from './fs-client.ts';
export { thawTree } from './freezer.ts';
export { canCheckpoint, unmountPath, type CheckpointInfo, type CheckpointVolume, type Volume, type VolumeStore } from './volume.ts';
export { ensureBaseImage, buildImageFile, type BaseImage } from './image.ts';
export { VM_DEFAULTS } from './defaults.ts';
export { DEBIAN_SUITE, findDebootstrap } from './debootstrap.ts';
export { apparentSize, checkTarball, type Progress, type RootSource } from './rootfs.ts';
export { ensureTools } from './tools.ts';
export type { Limits } from './oci.ts';
export { VmError } from './errors.ts';
export { STREAM, CONTROL, frame, streamFrame, controlFrame, decodeControl, readFrames } from './frames.ts';
export type { IdMap } from './namespaces.ts';
export type { ServiceStatus, ServiceSpec } from './init/services.ts';
export type { SessionInfo } from './init/sessions.ts';
export { StorageDaemon, ObjectVolumeStore, ObjectVolume, redactUrl, DEVICE_DEFAULTS, VOLUMES_DEFAULTS, type Checkpoint, type DeviceOptions } from './storage/index.ts';
export { createLogger, memoryLogger, silentLogger, type Logger } from './logger.ts';

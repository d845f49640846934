/** The sprite machine: sandboxes, their root disks, and the talk with sprite-init. */
export { Sandbox, sandboxPaths, removeCgroups, type SandboxInit } from './sandbox.ts';
export { ControlClient } from './control.ts';
export { thawTree } from './freezer.ts';
export { canCheckpoint, unmountPath, type CheckpointInfo, type CheckpointVolume, type Volume, type VolumeStore } from './volume.ts';
export { ensureBaseImage, buildImageFile, type BaseImage, DEFAULT_DISK_BYTES, DEFAULT_IMAGE_MAX_BYTES } from './image.ts';
export { DEBIAN_DEFAULTS, DEBIAN_SUITE, findDebootstrap } from './debootstrap.ts';
export { apparentSize, checkTarball, type Progress, type RootSource } from './rootfs.ts';
export { ensureTools } from './tools.ts';
export { DEFAULT_LIMITS, type Limits } from './oci.ts';
export { VmError } from './errors.ts';
export { STREAM, CONTROL, frame, streamFrame, controlFrame, decodeControl, readFrames } from './frames.ts';
export type { IdMap } from './namespaces.ts';
export type { ServiceStatus, ServiceSpec } from './init/services.ts';
export type { SessionInfo } from './init/sessions.ts';
export { StorageDaemon, ObjectVolumeStore, ObjectVolume, redactUrl, type Checkpoint } from './storage/index.ts';

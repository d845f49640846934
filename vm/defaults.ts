// The sprite machine's defaults in one object, in a file with no imports: node/options.ts reads them
// for the peer's flags and help without loading the sandbox and storage code behind vm/index.ts.

/** Defaults of the vm unit: a sprite's limits, its disk, and what base images are built from. */
export const VM_DEFAULTS = {
  /** Resource limits of one sprite's inner container (see Limits). */
  limits: { memoryBytes: 1024 ** 3, cpus: 1, pids: 1024 },
  /** Virtual size of a sprite's disk: sparse, so only written blocks take space. */
  diskBytes: 100 * 1024 ** 3,
  /** Cap on the bytes of files (and of a tarball) an image may be built from. */
  imageMaxBytes: 16 * 1024 ** 3,
  /** The suite and mirror of Debian images when none is given. */
  debian: { suite: 'bookworm', mirror: 'http://deb.debian.org/debian' },
} as const;

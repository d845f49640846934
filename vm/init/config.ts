/**
 * Where sprite-init mounts the sprite's pieces in its own mount namespace before creating the
 * container. runc sets up the container's mounts as the sprite's remapped root, which cannot
 * traverse a private data dir such as /root/.sprite; these paths are traversable and private
 * to the sandbox. The directory exists (empty) on the host.
 */
export const STAGE = {
  dir: '/run/sprites',
  rootfs: '/run/sprites/rootfs',
  spriteDir: '/run/sprites/sprite',
  toolsDir: '/run/sprites/tools',
  /** A small shared tmpfs: checkpoint mounts made here propagate to /.sprite/checkpoints in the container. */
  checkpoints: '/run/sprites/checkpoints',
  /** The sprite's resolv.conf (with egress), bound over /etc/resolv.conf in the container. */
  resolvConf: '/run/sprites/resolv.conf',
  /** The idmap user namespace (InitConfig.idmapNamespace), bound here: the host's binds of namespaces are dropped once the container exists. */
  idmap: '/run/sprites/idmap',
} as const;

/** Where the container sees the mounted checkpoints. */
export const CHECKPOINTS_DIR = '/.sprite/checkpoints';

/** What the peer tells sprite-init at start, as JSON in the file named by its first argument. */
export interface InitConfig {
  /** Container id for runc. */
  id: string;
  runcRoot: string;
  bundle: string;
  /** Peer-facing control socket (cbor frames). */
  controlSocket: string;
  /** Socket the peer's proxy connects to; each connection is piped to 127.0.0.1:httpPort. */
  httpSocket: string;
  /** The peer's socket for requests made on behalf of code inside the sprite (see vm/requests.ts); absent: none. */
  peerSocket?: string;
  /** Host path of the sprite's /.sprite directory. */
  spriteDir: string;
  /** File holding the service definitions. */
  servicesFile: string;
  /** The sprite's HTTP port. */
  httpPort: number;
  /** Log of runc's own output. */
  runcLog: string;
  /** Host path of the mounted root disk, staged at STAGE.rootfs. */
  rootfs: string;
  /** Host path of the tools directory, staged read-only at STAGE.toolsDir. */
  toolsDir: string;
  /**
   * Host directories whose mounts sprite-init drops from its own mount namespace once the
   * container exists (other sprites' disks and namespaces, the storage daemon's FUSE mount): a
   * copy held here would keep their loop devices and namespaces alive after the host lets go.
   */
  privateDirs: string[];
  /** A user namespace whose map shows the disk's stored ids in the sprite's own range: the disk and checkpoints are mounted through it (idmap-mount.ts). Absent: plain binds. */
  idmapNamespace?: string;
  /** Text of the container's /etc/resolv.conf (the gateway as nameserver); absent: no egress, the disk's own file stays. */
  resolvConf?: string;
}

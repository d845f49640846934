// Per-sprite bandwidth with tc: a token bucket on each end of its veth, each shaping what leaves
// that end (host end: downloads into the sprite; sprite end: uploads). The sprite's root has no
// CAP_NET_ADMIN, so it cannot lift its own. The qdiscs go with the veth.
import { runCommand } from '../command.ts';

/** The tc arguments of a token bucket of `bitsPerSecond` on `dev`. */
export function tokenBucket(dev: string, bitsPerSecond: number): string[] {
  // 20 ms worth of traffic, and at least a few GSO packets, so the bucket never starves a full-size burst.
  const burst = Math.max(256 * 1024, Math.round(bitsPerSecond / 8 / 50));
  return ['qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${bitsPerSecond}bit`, 'burst', String(burst), 'latency', '50ms'];
}

/** Limits what the host end `host` sends into the sprite; the sprite end's limit runs inside (see Egress.attach). 0: unlimited. */
export async function limitHostEnd(host: string, bitsPerSecond: number): Promise<void> {
  if (bitsPerSecond > 0) await runCommand('tc', tokenBucket(host, bitsPerSecond));
}

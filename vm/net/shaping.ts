// Per-sprite bandwidth with tc: a token bucket on each end of its veth, each shaping what leaves
// that end (host end: downloads into the sprite; sprite end: uploads). The sprite's root has no
// CAP_NET_ADMIN, so it cannot lift its own. The qdiscs go with the veth.
import { runCommand } from '../command.ts';

/** Limits both directions of the veth `host` <-> eth0 (in `netns`) to `bitsPerSecond`; 0 leaves it unlimited. */
export async function limitRate(host: string, netns: string, bitsPerSecond: number): Promise<void> {
  if (bitsPerSecond <= 0) return;
  // 20 ms worth of traffic, and at least a few GSO packets, so the bucket never starves a full-size burst.
  const burst = Math.max(256 * 1024, Math.round(bitsPerSecond / 8 / 50));
  const qdisc = (dev: string): string[] => ['qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${bitsPerSecond}bit`, 'burst', String(burst), 'latency', '50ms'];
  await runCommand('tc', qdisc(host));
  await runCommand('nsenter', [`--net=${netns}`, '--', 'tc', ...qdisc('eth0')]);
}

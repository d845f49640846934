// A sprite's veth: the host end stays in the host's namespace, named with the peer's prefix; the
// other end goes into the sprite's network namespace as eth0 with the sprite's address and a
// default route via the gateway. IPv6 is switched off on both ends: never open.
import { writeFile } from 'node:fs/promises';
import { runCommand } from '../command.ts';

/** How one sprite's veth is set up. */
export interface VethSpec {
  /** Host end (<= 15 characters). */
  host: string;
  /** Pinned network namespace of the sprite. */
  netns: string;
  address: string;
  gateway: string;
}

/**
 * Creates the veth, moves its sprite end in and configures both ends: one `ip -batch` on the host
 * and one shell inside (`inside`: extra commands for it, e.g. tc), few processes per sandbox.
 */
export async function addVeth(spec: VethSpec, inside: string[] = []): Promise<void> {
  await runCommand('ip', ['-batch', '-'], {
    input: [
      `link add ${spec.host} type veth peer name eth0 netns ${spec.netns}`,
      `link set ${spec.host} up`,
      `route add ${spec.address}/32 dev ${spec.host} src ${spec.gateway}`,
      '',
    ].join('\n'),
  });
  try {
    await writeFile(`/proc/sys/net/ipv6/conf/${spec.host}/disable_ipv6`, '1');
    // /proc/sys/net shows the namespace of the process reading it: a shell inside writes the sysctls.
    const script = [
      'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6',
      'echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6',
      `printf '%s\\n' 'addr add ${spec.address}/32 dev eth0' 'link set eth0 up' 'route add ${spec.gateway}/32 dev eth0 scope link' 'route add default via ${spec.gateway} dev eth0' | ip -batch -`,
      ...inside,
    ].join(' && ');
    await runCommand('nsenter', [`--net=${spec.netns}`, '--', 'sh', '-c', script]);
  } catch (error) {
    await removeVeth(spec.host);
    throw error;
  }
}

/** Deletes a veth (both ends, its routes and qdiscs go with it); no error when it is gone. */
export async function removeVeth(host: string): Promise<void> {
  await runCommand('ip', ['link', 'del', host]).catch(() => undefined);
}

/** Host interfaces whose names start with `prefix`. */
export async function linksWithPrefix(prefix: string): Promise<string[]> {
  const links = JSON.parse(await runCommand('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  return links.map((link) => link.ifname).filter((name) => name.startsWith(prefix));
}

// What egress reads from and sets on the host: the default route's interface, the first
// nameserver of /etc/resolv.conf, IPv4 forwarding.
import { readFile, writeFile } from 'node:fs/promises';
import { runCommand } from '../command.ts';
import { parseIpv4 } from './cidr.ts';

/** The interface of the host's IPv4 default route, or undefined when there is none. */
export async function defaultUplink(): Promise<string | undefined> {
  const routes = JSON.parse(await runCommand('ip', ['-j', '-4', 'route', 'show', 'default'])) as { dev?: string }[];
  return routes.find((route) => typeof route.dev === 'string')?.dev;
}

/** The first IPv4 nameserver of a resolv.conf text, or undefined. */
export function firstNameserver(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const match = /^\s*nameserver\s+(\S+)/.exec(line);
    if (match && parseIpv4(match[1]!) !== undefined) return match[1];
  }
  return undefined;
}

/** The host's upstream resolver: the first nameserver of /etc/resolv.conf, or undefined. */
export async function defaultNameserver(): Promise<string | undefined> {
  return firstNameserver(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
}

/** Every IPv4 route of the host (main table and the others), as destinations; `default` is left out. */
export async function routeDestinations(): Promise<string[]> {
  const routes = JSON.parse(await runCommand('ip', ['-j', '-4', 'route', 'show', 'table', 'all'])) as { dst?: string }[];
  return routes.map((route) => route.dst ?? '').filter((dst) => dst !== '' && dst !== 'default');
}

/** True when a network interface of this name exists in the host's namespace. */
export async function linkExists(name: string): Promise<boolean> {
  return runCommand('ip', ['link', 'show', 'dev', name]).then(() => true, () => false);
}

/** Turns on IPv4 forwarding (host-wide; left on at stop, as other peers on the host may rely on it). */
export async function enableForwarding(): Promise<void> {
  await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
}

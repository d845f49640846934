// The peer's sprite range and its gateway. The gateway address sits on an empty bridge with the
// whole range as its prefix, so the claim shows in the host's routing table: a peer picking a range
// later on the same host (`auto`) skips every range that overlaps a route, ours included. The pick
// and the claim happen under a host-wide lock file, so peers started at once never collide.
import { open, readFile, rm } from 'node:fs/promises';
import { processAlive, runCommand } from '../command.ts';
import { VmError } from '../errors.ts';
import { formatIpv4, overlaps, parseCidr, size, type Cidr } from './cidr.ts';
import { routeDestinations } from './host.ts';

/** Where automatic ranges come from: the shared address space of RFC 6598, which LANs rarely use. */
export const SPRITE_SPACE = '100.64.0.0/10';
/** Size of an automatic range: 1022 sprites per peer. */
const AUTO_PREFIX = 22;
const LOCK_FILE = '/run/sprite-egress.lock';
const LOCK_WAIT_MS = 15_000;

/** A claimed range: sprites get its addresses from the third on; the second is the gateway. */
export interface SpriteRange {
  cidr: Cidr;
  gateway: string;
  /** The empty bridge holding the gateway address. */
  device: string;
}

/**
 * Claims `wanted` (a CIDR, or `auto`: the first /22 of 100.64.0.0/10 no host route overlaps) by
 * creating `device`, an empty bridge (kernels may lack dummy interfaces), with the gateway address on it.
 */
export async function claimRange(wanted: string, device: string): Promise<SpriteRange> {
  return withHostLock(async () => {
    const cidr = wanted === 'auto' ? await freeRange() : parseCidr(wanted);
    if (!cidr) throw new VmError('ERR_EGRESS', `egress range ${wanted} is not an IPv4 CIDR`);
    const gateway = formatIpv4(cidr.base + 1);
    await runCommand('ip', ['link', 'add', device, 'type', 'bridge']);
    try {
      await runCommand('ip', ['addr', 'add', `${gateway}/${cidr.prefix}`, 'dev', device]);
      await runCommand('ip', ['link', 'set', device, 'up']);
    } catch (error) {
      await runCommand('ip', ['link', 'del', device]).catch(() => undefined);
      throw error;
    }
    return { cidr, gateway, device };
  });
}

/** The address of sprite slot `slot` (0-based) in a range; undefined past its end. */
export function slotAddress(range: Cidr, slot: number): string | undefined {
  // Network address, gateway, then sprites; the broadcast address stays unused.
  const offset = slot + 2;
  return offset < size(range) - 1 ? formatIpv4(range.base + offset) : undefined;
}

async function freeRange(): Promise<Cidr> {
  const space = parseCidr(SPRITE_SPACE)!;
  const taken = (await routeDestinations()).map((dst) => parseCidr(dst)).filter((cidr): cidr is Cidr => cidr !== undefined);
  for (let base = space.base; base < space.base + size(space); base += 2 ** (32 - AUTO_PREFIX)) {
    const candidate = { base, prefix: AUTO_PREFIX };
    if (!taken.some((route) => overlaps(route, candidate))) return candidate;
  }
  throw new VmError('ERR_EGRESS', `no free /${AUTO_PREFIX} left in ${SPRITE_SPACE}; pick one with --egress-range`);
}

/** Runs `work` holding the host-wide egress lock (a file made exclusively; a dead holder's is taken over). */
async function withHostLock<T>(work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const handle = await open(LOCK_FILE, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(await readFile(LOCK_FILE, 'utf8').catch(() => ''));
      if (holder > 0 && !processAlive(holder)) await rm(LOCK_FILE, { force: true });
      else if (Date.now() > deadline) throw new VmError('ERR_EGRESS', `${LOCK_FILE} held by process ${holder} for ${LOCK_WAIT_MS} ms`);
      else await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  try {
    return await work();
  } finally {
    await rm(LOCK_FILE, { force: true });
  }
}


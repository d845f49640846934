// Starts a peer's egress from its config: resolves the uplink and upstream resolver from the host
// when they are not given, checks the tools, and brings up vm/net's Egress. What a missing piece
// does is documented in docs/NETWORKING.md: no default route means egress off with a warning (a
// host with no network has nothing to reach); a missing tool or a failed set-up stops the start.
import { defaultNameserver, defaultUplink, Egress, linkExists, type Logger } from '../../vm/index.ts';
import type { PeerConfig } from '../config.ts';
import { missingCommands } from '../preflight.ts';

/** Tools egress runs: nft (nftables), tc and ip (iproute2). */
const EGRESS_COMMANDS = ['nft', 'tc', 'ip', 'nsenter'];

/** The peer's egress, or undefined when it is off (configured so, or no uplink could be found). */
export async function startEgress(config: Readonly<PeerConfig>, tag: string, logger: Logger): Promise<Egress | undefined> {
  const settings = config.egress;
  if (!settings.on) return undefined;
  const missing = await missingCommands(EGRESS_COMMANDS);
  if (missing.length > 0) throw new Error(`egress needs ${missing.join(', ')} (packages nftables, iproute2): run scripts/setup.sh, or start with --egress off`);
  const uplink = settings.uplink ?? (await defaultUplink());
  if (uplink === undefined) {
    logger.warn('egress off: this host has no default route; give --egress-uplink to choose an interface');
    return undefined;
  }
  if (!(await linkExists(uplink))) throw new Error(`egress uplink ${uplink} is not a network interface of this host (--egress-uplink)`);
  try {
    return await Egress.start(tag, {
      uplink, range: settings.range, allowPrivate: settings.allowPrivate, rateBitsPerSecond: settings.rateBitsPerSecond,
      dns: settings.dns ?? (await defaultNameserver()),
    });
  } catch (error) {
    throw new Error(`egress set-up failed: ${(error as Error).message} (start with --egress off to run sprites with loopback only)`, { cause: error });
  }
}

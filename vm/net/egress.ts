// A peer's egress: its sprite range and gateway, its nftables table, and one veth per sprite.
// Started once with the peer (sweeping what a killed run left), then `attach` for each sandbox as
// its pool entry is prepared and `release` when the sandbox goes.
import { VmError } from '../errors.ts';
import { formatCidr, parseCidr } from './cidr.ts';
import { EgressFirewall, type SpriteFirewall } from './firewall.ts';
import { enableForwarding } from './host.ts';
import { claimRange, slotAddress, type SpriteRange } from './range.ts';
import { BLOCKED } from './ruleset.ts';
import { limitHostEnd, tokenBucket } from './shaping.ts';
import { addVeth, linksWithPrefix, removeVeth } from './veth.ts';

/** The operator's egress settings, resolved (see node/options.ts). */
export interface EgressSettings {
  /** The interface sprite traffic leaves through. */
  uplink: string;
  /** `auto` or a CIDR. */
  range: string;
  /** CIDRs of private or blocked space sprites may reach anyway. */
  allowPrivate: string[];
  /** Per-sprite limit in each direction, bits per second; 0: none. */
  rateBitsPerSecond: number;
  /** Upstream resolver the DNS side forwards to. */
  dns: string | undefined;
}

/** The host-side names of a peer's egress, from its tag (a few hex characters unique to the peer on this host). */
export function egressNames(tag: string): { vethPrefix: string; device: string; table: string } {
  return { vethPrefix: `sv${tag}`, device: `sg${tag}`, table: `sprites_${tag}` };
}

/** One sprite's network as attached. */
export interface SpriteNetwork {
  address: string;
  gateway: string;
  /** Host end of its veth. */
  veth: string;
  firewall: SpriteFirewall;
  /** Removes its veth, firewall chain and set; safe to call twice. */
  release(): Promise<void>;
}

/** What a sandbox needs to get a network: see Sandbox.prepare. */
export interface NetworkAttacher {
  attach(netns: string): Promise<SpriteNetwork>;
}

/** A running peer's egress. */
export class Egress implements NetworkAttacher {
  readonly settings: EgressSettings;
  readonly firewall: EgressFirewall;
  readonly #tag: string;
  readonly #names: ReturnType<typeof egressNames>;
  readonly #range: SpriteRange;
  readonly #slots = new Set<number>();

  private constructor(settings: EgressSettings, tag: string, range: SpriteRange, firewall: EgressFirewall) {
    this.settings = settings;
    this.#tag = tag;
    this.#names = egressNames(tag);
    this.#range = range;
    this.firewall = firewall;
  }

  /**
   * Sweeps what a killed run with this tag left (veths, the gateway's interface, the table), turns
   * on IPv4 forwarding, claims the range and loads the table.
   */
  static async start(tag: string, settings: EgressSettings): Promise<Egress> {
    const names = egressNames(tag);
    await sweepEgress(tag);
    for (const cidr of settings.allowPrivate) if (!parseCidr(cidr)) throw new VmError('ERR_EGRESS', `allowed private range ${cidr} is not an IPv4 CIDR`);
    await enableForwarding();
    const range = await claimRange(settings.range, names.device);
    const firewall = new EgressFirewall(names.table);
    try {
      await firewall.load({
        table: names.table, vethPrefix: names.vethPrefix, uplink: settings.uplink, range: formatCidr(range.cidr), gateway: range.gateway,
        blocked: BLOCKED, allowed: settings.allowPrivate.map((cidr) => formatCidr(parseCidr(cidr)!)),
      });
    } catch (error) {
      await sweepEgress(tag);
      throw new VmError('ERR_EGRESS', `cannot load the egress firewall: ${(error as Error).message}`, { cause: error });
    }
    return new Egress(settings, tag, range, firewall);
  }

  /** The gateway address: where sprites send DNS (the policy resolver listens here). */
  get gateway(): string {
    return this.#range.gateway;
  }

  /** The peer's sprite range, as a CIDR. */
  get range(): string {
    return formatCidr(this.#range.cidr);
  }

  /** Gives the network namespace `netns` a veth, an address, a default route, a firewall chain and a rate limit. */
  async attach(netns: string): Promise<SpriteNetwork> {
    const slot = this.#takeSlot();
    const address = slotAddress(this.#range.cidr, slot);
    const veth = `${this.#names.vethPrefix}${slot.toString(36)}`;
    if (address === undefined) {
      this.#slots.delete(slot);
      throw new VmError('ERR_EGRESS', `the egress range ${this.range} has no address left`);
    }
    let firewall: SpriteFirewall | undefined;
    let released: Promise<void> | undefined;
    const release = (): Promise<void> => {
      released ??= (async () => {
        if (firewall) await this.firewall.removeSprite(veth, address).catch(() => undefined);
        await removeVeth(veth);
        this.#slots.delete(slot);
      })();
      return released;
    };
    try {
      const rate = this.settings.rateBitsPerSecond;
      await addVeth({ host: veth, netns, address, gateway: this.gateway }, rate > 0 ? [['tc', ...tokenBucket('eth0', rate)].join(' ')] : []);
      await limitHostEnd(veth, rate);
      firewall = await this.firewall.addSprite(veth, address);
    } catch (error) {
      await release();
      throw error;
    }
    return { address, gateway: this.gateway, veth, firewall, release };
  }

  /** Removes everything of this peer's egress from the host (sprites release their own first). */
  async stop(): Promise<void> {
    await sweepEgress(this.#tag);
  }

  #takeSlot(): number {
    let slot = 0;
    while (this.#slots.has(slot)) slot += 1;
    this.#slots.add(slot);
    return slot;
  }
}

/** Deletes a peer's veths, gateway interface and table, whatever state they are in. */
export async function sweepEgress(tag: string): Promise<void> {
  const names = egressNames(tag);
  for (const link of await linksWithPrefix(names.vethPrefix)) await removeVeth(link);
  await removeVeth(names.device);
  await new EgressFirewall(names.table).unload();
}

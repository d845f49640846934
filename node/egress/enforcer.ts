// Enforces sprites' network policies on this peer: runs the policy resolver on the gateway, and
// keeps each running sprite's firewall in step with its policy (restricted or not, the addresses
// its allowed answers gave, the ones a new policy takes away).
import type { Egress, Logger, SpriteFirewall } from '../../vm/index.ts';
import type { NetworkPolicy } from '../policies.ts';
import { Admissions } from './admissions.ts';
import { compilePolicy } from './policy-match.ts';
import { PolicyResolver } from './resolver.ts';

const DNS_PORT = 53;

/** A sprite running here under a policy. */
interface Enforced {
  name: string;
  firewall: SpriteFirewall;
  /** The policy object in force (one object per change, so its compiled form is cached). */
  policy: NetworkPolicy;
  admissions: Admissions;
  /** Addresses revoked from it and when their cut ends (ms): an allowed answer that gives one again lifts its cut. */
  cut: Map<string, number>;
}

export interface EnforcerInit {
  egress: Egress;
  /** The stored network policy of a sprite. */
  policyOf(name: string): NetworkPolicy;
  logger: Logger;
}

export class PolicyEnforcer {
  readonly #init: EnforcerInit;
  /** By the sprite's address (the source of its DNS queries). */
  readonly #enforced = new Map<string, Enforced>();
  #resolver: PolicyResolver | undefined;

  constructor(init: EnforcerInit) {
    this.#init = init;
  }

  /** Starts the resolver on the gateway, where every sprite's resolv.conf points. */
  async start(): Promise<void> {
    const { egress, logger } = this.#init;
    const upstream = egress.settings.dns;
    if (upstream === undefined) logger.warn('no upstream resolver (--egress-dns, /etc/resolv.conf): sprites\' lookups will fail');
    this.#resolver = await PolicyResolver.start({
      listen: { address: egress.gateway, port: DNS_PORT },
      // Without an upstream, allowed names get SERVFAIL (nothing listens on the discard port).
      upstream: { address: upstream ?? '127.0.0.1', port: upstream === undefined ? 9 : DNS_PORT },
      policyFor: (source) => this.#current(source)?.policy,
      onAllowed: (source, name, addresses, ttl) => this.#admit(source, name, addresses, ttl),
      warn: (message, fields) => logger.warn(message, fields),
    });
  }

  async close(): Promise<void> {
    await this.#resolver?.close();
    this.#enforced.clear();
  }

  /**
   * Puts sprite `name`'s firewall under its stored policy: before each start (a new sandbox has a
   * new firewall), and again whenever the policy changes. A change cuts what the new policy takes
   * away: everything unadmitted when it restricts, and the addresses only newly denied names gave.
   */
  async apply(name: string, firewall: SpriteFirewall): Promise<void> {
    const policy = this.#init.policyOf(name);
    const matcher = compilePolicy(policy);
    let enforced = this.#enforced.get(firewall.address);
    if (enforced?.firewall !== firewall || enforced.name !== name) {
      enforced = { name, firewall, policy, admissions: new Admissions(), cut: new Map() };
      this.#enforced.set(firewall.address, enforced);
    }
    enforced.policy = policy;
    const withdrawn = enforced.admissions.withdraw((host) => matcher.decide(host) === 'allow');
    if (matcher.restrictive && !firewall.restricted) {
      // Admitted while the sprite was unrestricted: the lookups it made stay good until they expire.
      for (const { address, seconds } of enforced.admissions.live()) await firewall.admit([address], seconds);
    }
    if (matcher.restrictive !== firewall.restricted) await firewall.setRestricted(matcher.restrictive);
    for (const { address, seconds } of withdrawn) {
      await firewall.revoke([address], seconds);
      enforced.cut.set(address, Date.now() + seconds * 1000);
    }
    this.#init.logger.info('network policy applied', { sprite: name, restrictive: matcher.restrictive, withdrawn: withdrawn.length });
  }

  /** The sprite at `address`, if its firewall is still the one attached there. */
  #current(address: string): Enforced | undefined {
    const enforced = this.#enforced.get(address);
    if (enforced && this.#init.egress.firewall.byAddress(address) === enforced.firewall) return enforced;
    this.#enforced.delete(address);
    return undefined;
  }

  async #admit(source: string, name: string, addresses: string[], ttl: number): Promise<void> {
    const enforced = this.#current(source);
    if (!enforced) return;
    const now = Date.now();
    for (const [address, until] of enforced.cut) if (until <= now) enforced.cut.delete(address);
    const due = enforced.admissions.record(name, addresses, ttl, now);
    // Unrestricted, the allow set is not consulted (it is filled when a policy restricts): only a cut needs lifting.
    const admit = enforced.firewall.restricted ? due : addresses.filter((address) => enforced.cut.has(address));
    for (const address of admit) enforced.cut.delete(address);
    if (admit.length > 0) await enforced.firewall.admit(admit, ttl);
  }
}

import type { Limits, Logger, SpriteFirewall } from '../../vm/index.ts';
import { PeerError } from '../errors.ts';
import { parseNetworkPolicy, parsePrivilegesPolicy, parseResourcesPolicy, type NetworkPolicy, type PrivilegesPolicy, type ResourcesPolicy } from '../policies.ts';
import type { SpriteDocs } from '../records/index.ts';
import type { Machines } from './machines.ts';

const MiB = 1024 * 1024;

/** What a sprite's policies need. */
export interface PoliciesInit {
  machines: Machines;
  docs: SpriteDocs;
  /** The operator's limits (--sprite-memory and the others): a policy may lower memory, never raise it past this. */
  limits: Readonly<Limits>;
  /** The limits of the sprite with volume `id` when it has no policy (those it was created with, within the operator's); default the operator's. */
  base?: (id: string) => Readonly<Limits>;
  /** Puts a running sprite's firewall under its (new) network policy; absent with egress off. */
  enforce?: (name: string, firewall: SpriteFirewall) => Promise<void>;
  logger: Logger;
}

/**
 * A sprite's network, privileges and resources policies: stored in the replicated sprite documents
 * (keyed by the sprite's id), so they follow the sprite to any peer and survive restarts. Only the
 * resources policy acts today: its memory limit is applied to the running sprite's cgroup at once
 * and to every later start of it (`limits`).
 */
export class SpritePolicies {
  readonly #init: PoliciesInit;

  constructor(init: PoliciesInit) {
    this.#init = init;
  }

  /** The network policy; none stored reads as no rules. */
  network(name: string): NetworkPolicy {
    return this.#init.docs.read(this.#id(name), 'policy/network', parseNetworkPolicy) ?? { rules: [] };
  }

  /** Stores the policy a new sprite starts with (the peer's --egress-default-policy) unless it has one; no rules need no document. */
  initNetwork(id: string, policy: NetworkPolicy): void {
    if (policy.rules.length === 0 || this.#init.docs.read(id, 'policy/network', parseNetworkPolicy)) return;
    this.#init.docs.write(id, 'policy/network', policy);
  }

  /**
   * Checks and stores a network policy and, on the owner, applies it to the running sprite at once
   * (node/egress/enforcer.ts); a sprite not running here gets it at its next start.
   */
  async setNetwork(name: string, body: unknown): Promise<void> {
    const policy = parseNetworkPolicy(body);
    const id = this.#id(name);
    await this.#init.machines.exclusive(name, async () => {
      this.#init.docs.write(id, 'policy/network', policy);
      const firewall = this.#init.machines.running(name)?.sandbox.network?.firewall;
      if (firewall && this.#init.enforce) await this.#init.enforce(name, firewall);
    });
  }

  /** The privileges policy as stored; none reads as `{}`. */
  privileges(name: string): PrivilegesPolicy {
    return this.#init.docs.read(this.#id(name), 'policy/privileges', parsePrivilegesPolicy) ?? {};
  }

  /** Checks and stores a privileges policy (stored only: see docs/API.md for what holds today). */
  setPrivileges(name: string, body: unknown): void {
    this.#init.docs.write(this.#id(name), 'policy/privileges', parsePrivilegesPolicy(body));
  }

  deletePrivileges(name: string): void {
    this.#init.docs.remove(this.#id(name), 'policy/privileges');
  }

  /** The resources in force: the policy's memory limit, else the sprite's own. */
  resources(name: string): Required<ResourcesPolicy> {
    const id = this.#id(name);
    const stored = this.#stored(id);
    return { memory: { limit_mb: this.#memoryBytes(stored, id) / MiB, ...(stored?.memory?.autoscale === undefined ? {} : { autoscale: stored.memory.autoscale }) } };
  }

  /**
   * Checks and stores a resources policy and applies its memory limit to the running sprite. A limit
   * above the operator's maximum is refused (ERR_BAD_REQUEST); one the sprite cannot shrink to
   * right now is refused before anything is stored (ERR_MEMORY_IN_USE).
   */
  async setResources(name: string, body: unknown): Promise<void> {
    const policy = parseResourcesPolicy(body);
    const maxMb = Math.floor(this.#init.limits.memoryBytes / MiB);
    if (policy.memory && policy.memory.limit_mb > maxMb) {
      throw new PeerError('ERR_BAD_REQUEST', `body.memory.limit_mb must be at most ${maxMb} (this peer's --sprite-memory)`);
    }
    const id = this.#id(name);
    // Under the sprite's lock: a start under way reads the limits either before or after, never half.
    await this.#init.machines.exclusive(name, async () => {
      await this.#apply(name, this.#memoryBytes(policy, id));
      this.#init.docs.write(id, 'policy/resources', policy);
    });
  }

  /** Removes the resources policy: the sprite's own limits apply again, at once. */
  async deleteResources(name: string): Promise<void> {
    const id = this.#id(name);
    await this.#init.machines.exclusive(name, async () => {
      await this.#apply(name, this.#base(id).memoryBytes);
      this.#init.docs.remove(id, 'policy/resources');
    });
  }

  /** The limits a start of the sprite with volume `id` gets: its own, with the policy's memory. */
  limits(id: string): Limits {
    return { ...this.#base(id), memoryBytes: this.#memoryBytes(this.#stored(id), id) };
  }

  /** Forgets every document of a destroyed sprite. */
  forget(id: string): void {
    this.#init.docs.clear(id);
  }

  #stored(id: string): ResourcesPolicy | undefined {
    return this.#init.docs.read(id, 'policy/resources', parseResourcesPolicy);
  }

  /** A policy's memory limit in bytes, never over this peer's maximum (a peer taking a sprite over may have a lower one); without one, the sprite's own. */
  #memoryBytes(policy: ResourcesPolicy | undefined, id: string): number {
    const max = this.#init.limits.memoryBytes;
    return policy?.memory === undefined ? this.#base(id).memoryBytes : Math.min(max, policy.memory.limit_mb * MiB);
  }

  #base(id: string): Readonly<Limits> {
    return this.#init.base?.(id) ?? this.#init.limits;
  }

  /** Sets the memory limit of the sprite's sandbox if one runs here (awake or asleep warm). */
  async #apply(name: string, bytes: number): Promise<void> {
    const machine = this.#init.machines.running(name);
    if (!machine) return;
    await machine.sandbox.setMemoryLimit(bytes);
    this.#init.logger.info('memory limit changed', { sprite: name, bytes });
  }

  /** The id of a sprite this peer owns (the API hands policy requests to the owner). */
  #id(name: string): string {
    return this.#init.machines.owned(name).id;
  }
}

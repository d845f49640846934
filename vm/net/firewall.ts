// The peer's egress firewall: its nftables table, and one handle per sprite that the DNS policy
// resolver drives (restrict, admit, revoke). nft runs off the create path: at start, when a pool
// entry is prepared or a sprite goes away, and when the resolver asks.
import { runCommand } from '../command.ts';
import { VmError } from '../errors.ts';
import { parseIpv4 } from './cidr.ts';
import * as rules from './ruleset.ts';

/** One sprite's firewall, for the DNS policy resolver. */
export interface SpriteFirewall {
  /** The sprite's IPv4 address (the source of its DNS queries). */
  readonly address: string;
  /** On: only addresses in the allow set pass (DNS to the gateway always does); open connections to others are cut. Off: everything the peer's rules permit. */
  setRestricted(on: boolean): Promise<void>;
  /** Adds addresses to the allow set for `ttlSeconds` (at least 1); re-admitting one renews its timeout. */
  admit(addresses: string[], ttlSeconds: number): Promise<void>;
  /** Takes addresses out of the allow set and bars them for `seconds` even while unrestricted, cutting live connections to them. */
  revoke(addresses: string[], seconds: number): Promise<void>;
  /** Empties the allow set; when restricted, cuts live connections (TCP reset on their next packet, conntrack entries deleted). */
  revokeAll(): Promise<void>;
  /** True while restricted. */
  readonly restricted: boolean;
}

/** Runs ruleset batches through `nft -f -`: batches asked for while one runs go together in the next call. */
export class EgressFirewall {
  readonly table: string;
  readonly #bySprite = new Map<string, SpriteFirewall>();
  #queue: { text: string; done: (error?: unknown) => void }[] = [];
  #running: Promise<void> | undefined;

  constructor(table: string) {
    this.table = table;
  }

  /** Loads (or replaces) the peer's table. */
  async load(spec: rules.TableSpec): Promise<void> {
    await this.apply(rules.tableRuleset(spec));
  }

  /** Deletes the peer's table (and everything in it); no error when it is gone already. */
  async unload(): Promise<void> {
    await runCommand('nft', ['delete', 'table', 'inet', this.table]).catch(() => undefined);
  }

  /** The firewall of the sprite with this address, if one is attached here. */
  byAddress(address: string): SpriteFirewall | undefined {
    return this.#bySprite.get(address);
  }

  /** Adds a sprite's chain, allow set and binding; returns its handle. */
  async addSprite(veth: string, address: string): Promise<SpriteFirewall> {
    const spec = { table: this.table, veth, address };
    await this.apply(rules.addSprite(spec));
    const handle = this.#handle(spec);
    this.#bySprite.set(address, handle);
    return handle;
  }

  /** Removes a sprite's chain, allow set and binding. */
  async removeSprite(veth: string, address: string): Promise<void> {
    this.#bySprite.delete(address);
    await this.apply(rules.removeSprite({ table: this.table, veth, address }));
    await flushConntrack(address);
  }

  /** Applies a ruleset text, batched with others asked for meanwhile; a failed batch is retried piece by piece so one bad piece fails alone. */
  apply(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ text, done: (error) => (error === undefined ? resolve() : reject(error)) });
      this.#running ??= this.#drain();
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      try {
        await nft(batch.map((item) => item.text).join(''));
        for (const item of batch) item.done();
      } catch (error) {
        if (batch.length === 1) batch[0]!.done(error);
        else for (const item of batch) await nft(item.text).then(() => item.done(), (one: unknown) => item.done(one));
      }
    }
    this.#running = undefined;
  }

  #handle(spec: rules.SpriteSpec): SpriteFirewall {
    let restricted = false;
    return {
      address: spec.address,
      get restricted() {
        return restricted;
      },
      setRestricted: async (on) => {
        await this.apply(rules.restrict(spec, on));
        restricted = on;
      },
      admit: async (addresses, ttlSeconds) => {
        if (checkAddresses(addresses) === 0) return;
        await this.apply(rules.admit(spec, addresses, Math.max(1, Math.ceil(ttlSeconds))));
      },
      revoke: async (addresses, seconds) => {
        if (checkAddresses(addresses) === 0) return;
        await this.apply(rules.revoke(spec, addresses, Math.max(1, Math.ceil(seconds))));
        for (const address of addresses) await flushConntrack(spec.address, address);
      },
      revokeAll: async () => {
        await this.apply(rules.revokeAll(spec));
        if (restricted) await flushConntrack(spec.address);
      },
    };
  }
}

/** Throws unless every entry is an IPv4 address (they go into nft's input); returns how many there are. */
function checkAddresses(addresses: string[]): number {
  const bad = addresses.find((address) => parseIpv4(address) === undefined);
  if (bad !== undefined) throw new VmError('ERR_EGRESS', `not an IPv4 address: ${bad}`);
  return addresses.length;
}

function nft(text: string): Promise<string> {
  return runCommand('nft', ['-f', '-'], { input: text });
}

/** Deletes a sprite's connection tracking entries (to `destination` only, if given), when the conntrack tool is installed (the firewall's resets cut them anyway). */
async function flushConntrack(address: string, destination?: string): Promise<void> {
  // Exits non-zero when there was nothing to delete, or when the tool is missing.
  await runCommand('conntrack', ['-D', '-s', address, ...(destination === undefined ? [] : ['-d', destination])]).catch(() => undefined);
}

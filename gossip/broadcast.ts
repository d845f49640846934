import { TopicValidatorResult, type GossipsubMessage } from '@libp2p/gossipsub';
import type { PeerId } from '@libp2p/interface';
import { decode, encode } from 'cbor-x';
import type { Host } from './host.ts';
import type { Replica } from './replica.ts';

/** Broadcast settings. */
export interface BroadcastInit {
  /** Gossipsub topic. @default 'sprites/changes/1' */
  topic?: string;
  /** Larger batches go out as a pointer and are pulled over sync. @default 64 KiB */
  maxPayloadBytes?: number;
  /** Asks `peer` for what this replica lacks (anti-entropy pull). */
  pull: (peer: PeerId) => Promise<unknown>;
  /** Called once per bad message with the sender, for rate-limited logging and counters. */
  onReject?: (from: string, error: Error) => void;
}

/** Counters for health. */
export interface BroadcastStats {
  published: number;
  pointers: number;
  received: number;
  rejected: number;
  pullsTriggered: number;
}

const MAX_SITE_ID = 64;

/** What gossipsub's implementation offers with `asyncValidation` (its exported interface leaves it out). */
interface AsyncValidation {
  reportMessageValidationResult(msgId: string, propagationSource: string, acceptance: TopicValidatorResult): void;
}

/**
 * Pushes each local commit to every peer over gossipsub; small batches inline, large ones as a
 * `{site, version}` pointer that receivers pull. A received batch that leaves a gap below it
 * (a lost or reordered message) triggers a pull from the peer that relayed it: gossip is fast,
 * sync is exact.
 */
export class Broadcast {
  readonly #host: Host;
  readonly #replica: Replica;
  readonly #topic: string;
  readonly #maxPayload: number;
  readonly #init: BroadcastInit;
  readonly #stats: BroadcastStats = { published: 0, pointers: 0, received: 0, rejected: 0, pullsTriggered: 0 };
  readonly #onMessage = (event: CustomEvent<GossipsubMessage>): void => this.#handle(event.detail);

  constructor(host: Host, replica: Replica, init: BroadcastInit) {
    this.#host = host;
    this.#replica = replica;
    this.#topic = init.topic ?? 'sprites/changes/1';
    this.#maxPayload = init.maxPayloadBytes ?? 64 * 1024;
    this.#init = init;
  }

  /** Subscribes to the topic. */
  start(): void {
    this.#host.services.pubsub.subscribe(this.#topic);
    this.#host.services.pubsub.addEventListener('gossipsub:message', this.#onMessage);
  }

  /** Unsubscribes. */
  stop(): void {
    this.#host.services.pubsub.removeEventListener('gossipsub:message', this.#onMessage);
    this.#host.services.pubsub.unsubscribe(this.#topic);
  }

  /** Counters. */
  stats(): BroadcastStats {
    return { ...this.#stats };
  }

  /** Publishes one committed version (already encoded as a batch). Never throws: sync repairs what gossip misses. */
  async publish(batch: Uint8Array, site: string, version: number): Promise<void> {
    const inline = batch.length <= this.#maxPayload;
    const payload = inline ? encode({ b: batch }) : encode({ p: [site, version] });
    try {
      await this.#host.services.pubsub.publish(this.#topic, payload);
      this.#stats.published += 1;
      if (!inline) this.#stats.pointers += 1;
    } catch {
      // No peer yet, or a transient error: anti-entropy delivers it later.
    }
  }

  #handle({ msg: message, msgId, propagationSource: from }: GossipsubMessage): void {
    if (message.topic !== this.#topic) return;
    // The host validates asynchronously: a message is relayed to other peers only once it is
    // accepted here, so a batch that is malformed or carries refused rows stops at this peer.
    const pubsub = this.#host.services.pubsub as unknown as AsyncValidation;
    pubsub.reportMessageValidationResult(msgId, from.toString(), this.#verdict(message.data, from));
  }

  #verdict(data: Uint8Array, from: PeerId): TopicValidatorResult {
    // Messages are unsigned: the peer that handed it to us is the one to pull gaps from (it has
    // at least this version).
    try {
      const payload = decode(data) as { b?: unknown; p?: unknown };
      if (payload?.b instanceof Uint8Array) {
        this.#stats.received += 1;
        const result = this.#replica.receive(payload.b, from.toString());
        if (result.behind) this.#pull(from);
        return result.refused > 0 ? TopicValidatorResult.Reject : TopicValidatorResult.Accept;
      }
      const pointer = payload?.p;
      if (Array.isArray(pointer) && typeof pointer[0] === 'string' && pointer[0].length <= MAX_SITE_ID && Number.isSafeInteger(pointer[1])) {
        if (this.#replica.lacksUpTo(pointer[0], pointer[1] as number)) this.#pull(from);
        return TopicValidatorResult.Accept;
      }
      throw new Error('message is neither a batch nor a pointer');
    } catch (error) {
      this.#stats.rejected += 1;
      this.#init.onReject?.(from.toString(), error as Error);
      return TopicValidatorResult.Reject;
    }
  }

  #pull(peer: PeerId): void {
    this.#stats.pullsTriggered += 1;
    void this.#init.pull(peer).catch(() => undefined);
  }
}

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { gossipsub, StrictNoSign, type GossipSub } from '@libp2p/gossipsub';
import { identify, type Identify } from '@libp2p/identify';
import type { PrivateKey } from '@libp2p/interface';
import { ping, type Ping } from '@libp2p/ping';
import { preSharedKey } from '@libp2p/pnet';
import { tcp } from '@libp2p/tcp';
import { createLibp2p, type Libp2p } from 'libp2p';

/** The services every peer's libp2p node runs. */
export type HostServices = {
  pubsub: GossipSub;
  identify: Identify;
  ping: Ping;
};

/** A peer's libp2p node. */
export type Host = Libp2p<HostServices>;

/** How to build a host. */
export interface HostInit {
  privateKey: PrivateKey;
  /** Private-network key: only peers holding it can connect. */
  swarmKey: Uint8Array;
  /** Multiaddrs to listen on, e.g. `/ip4/127.0.0.1/tcp/0`. */
  listen: string[];
}

/**
 * Builds (without starting) a libp2p host: TCP + pnet + noise + yamux, identify, ping and a
 * gossipsub tuned for a small private mesh.
 */
export async function createHost(init: HostInit): Promise<Host> {
  return createLibp2p({
    start: false,
    privateKey: init.privateKey,
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionProtector: preSharedKey({ psk: init.swarmKey }),
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { maxConnections: 64 },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        // Peers of one mesh often share an IP (several per machine): no colocation penalty.
        scoreParams: { IPColocationFactorWeight: 0 },
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        emitSelf: false,
        // Every peer is a full member: push each message to all topic peers, not only the mesh.
        floodPublish: true,
        // Only swarm-key holders can connect and noise authenticates each hop, so per-message
        // signatures add CPU (an Ed25519 verify per message per peer) without adding trust.
        // Message ids are then content hashes; each batch carries its site, version and HLC.
        globalSignaturePolicy: StrictNoSign,
        fallbackToFloodsub: false,
        // Relay a message only once broadcast.ts has applied it and found it valid, content included.
        asyncValidation: true,
      }),
    },
  });
}

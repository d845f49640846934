import { SpritesClient, type Sprite } from '@fly/sprites';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { startBackend, type StoreBackend } from '../vm/storage/helpers.ts';

/** Two peers of one mesh on one object store, and one sprite on the first. */
export interface TwoPeers {
  owner: PeerProcess;
  other: PeerProcess;
  /** The sprite through the peer that runs it, and through the other one (whose API hands requests over). */
  viaOwner: Sprite;
  viaOther: Sprite;
  stop(): Promise<void>;
}

/** Starts two peers (`args` for both), creates `name` on the first and waits until the second knows it. */
export async function twoPeers(name: string, args: string[] = []): Promise<TwoPeers> {
  const peers: PeerProcess[] = [];
  let store: StoreBackend | undefined;
  const stop = async (): Promise<void> => {
    for (const peer of peers) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await store?.stop();
  };
  try {
    store = await startBackend('file');
    const common = ['--object-store', store.url, ...args];
    const owner = await startPeer({ poolDepth: 1, args: common });
    peers.push(owner);
    const other = await startPeer({ poolDepth: 0, join: owner, args: common });
    peers.push(other);
    await createOn(owner, name);
    await eventually(async () => (await other.api('GET', `/v1/sprites/${name}`)).status === 200, 30_000, 'the other peer to know the sprite');
    const viaOwner = new SpritesClient(owner.token, { baseURL: owner.url }).sprite(name);
    // Tokens are mesh-wide: the owner's token works on the other peer too.
    const viaOther = new SpritesClient(owner.token, { baseURL: other.url }).sprite(name);
    return { owner, other, viaOwner, viaOther, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Every message of an SDK stream (service events, checkpoint progress), in order. */
export async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const message of stream) all.push(message);
  return all;
}

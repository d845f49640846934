import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { generateKey } from '@libp2p/pnet';
import { readFile, writeFile } from 'node:fs/promises';

/** Loads the peer's persistent Ed25519 key from `path`, creating it (mode 600) on first use. */
export async function loadOrCreatePeerKey(path: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(await readFile(path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`read peer key ${path}: ${(error as Error).message}`);
  }
  const key = await generateKeyPair('Ed25519');
  await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' });
  return key;
}

/**
 * Loads a private-network swarm key (the libp2p pnet text format). When `path` does not exist and
 * `create` is set, a new key is written there: the first peer of a mesh makes the key, the others
 * are given a copy.
 */
export async function loadSwarmKey(path: string, create: boolean): Promise<Uint8Array> {
  try {
    const key = await readFile(path);
    if (!/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}\s*$/.test(key.toString('utf8'))) {
      throw new Error(`swarm key ${path} is not in the /key/swarm/psk/1.0.0/ format`);
    }
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || !create) throw error;
  }
  const key = new Uint8Array(95);
  generateKey(key);
  await writeFile(path, key, { mode: 0o600, flag: 'wx' });
  return key;
}

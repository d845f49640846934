import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The peer-link PKI: one CA per mesh (kept in the replicated store, so every swarm-key holder can
 * sign with it) and one certificate per peer naming its libp2p peer id as the subject's CN. It is
 * a CA of its own, not the proxy's mesh CA: that one is name-constrained to the sprite domain,
 * handed to browsers, and may come from files.
 */

/** A certificate and its key in PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

/** Lifetime of the link CA, and of a peer's certificate (made anew at every start and CA change). */
const LIFETIME_DAYS = { ca: 3650, peer: 397 } as const;

/** What a link certificate may name: a peer id as libp2p prints it (base58btc), or any such plain token (tests name peers `peer-a`). */
export const PEER_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Makes a new link CA (P-256). */
export async function generateLinkCa(): Promise<KeyPair> {
  return inTemp(async (dir) => {
    await openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'),
      '-days', String(LIFETIME_DAYS.ca), '-subj', '/O=sprites mesh/CN=sprites peer-link CA',
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return { cert: await readFile(join(dir, 'ca.crt'), 'utf8'), key: await readFile(join(dir, 'ca.key'), 'utf8') };
  });
}

/** Makes a key for `peerId` and a certificate for it signed by `ca`, good for both ends of a link. */
export async function issuePeerCert(ca: KeyPair, peerId: string): Promise<KeyPair> {
  if (!PEER_ID.test(peerId)) throw new Error(`not a peer id: ${peerId}`);
  return inTemp(async (dir) => {
    await writeFile(join(dir, 'ca.crt'), ca.cert);
    await writeFile(join(dir, 'ca.key'), ca.key, { mode: 0o600 });
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'peer.key'), '-out', join(dir, 'peer.csr'), '-subj', `/O=sprites mesh/CN=${peerId}`]);
    await writeFile(join(dir, 'ext.cnf'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n');
    const serial = `0x${(randomBytes(1)[0]! & 0x7f).toString(16).padStart(2, '0')}${randomBytes(15).toString('hex')}`;
    await openssl([
      'x509', '-req', '-in', join(dir, 'peer.csr'), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-set_serial', serial,
      '-days', String(LIFETIME_DAYS.peer), '-sha256', '-extfile', join(dir, 'ext.cnf'), '-out', join(dir, 'peer.crt'),
    ]);
    return { cert: await readFile(join(dir, 'peer.crt'), 'utf8'), key: await readFile(join(dir, 'peer.key'), 'utf8') };
  });
}

/** Whether `cert` (PEM) was signed by `ca` (PEM); false for anything unparsable. */
export function signedBy(cert: string, ca: string): boolean {
  try {
    return new X509Certificate(cert).verify(new X509Certificate(ca).publicKey);
  } catch {
    return false;
  }
}

/** Parses a stored CA pair; undefined when malformed (rows come through gossip). */
export function parseKeyPair(text: string | undefined): KeyPair | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<KeyPair>;
    if (typeof value.cert !== 'string' || typeof value.key !== 'string') return undefined;
    const cert = new X509Certificate(value.cert);
    if (!cert.ca) return undefined;
    return { cert: value.cert, key: value.key };
  } catch {
    return undefined;
  }
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (error) {
    throw new Error(`openssl ${args[0]}: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`, { cause: error });
  }
}

async function inTemp<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'sprite-link-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

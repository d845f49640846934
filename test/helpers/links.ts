import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { meshSecret } from '../../node/data-dir.ts';
import { generateLinkCa, issuePeerCert, LinkCredentials, type KeyPair } from '../../node/links/index.ts';
import { HopKeys, type HopRole } from '../../node/placement/index.ts';

/**
 * Peer-link credentials for tests: one CA per test process (made on first use), certificates per
 * peer id. What a real peer gets from node/links/identity.ts, without a store.
 */
let ca: Promise<KeyPair> | undefined;

/** The test CA. */
export function testCa(): Promise<KeyPair> {
  ca ??= generateLinkCa();
  return ca;
}

/** A certificate and key naming `peerId`, signed by the test CA, and the CA's certificate. */
export async function testPair(peerId: string): Promise<KeyPair & { ca: string }> {
  const authority = await testCa();
  return { ...(await issuePeerCert(authority, peerId)), ca: authority.cert };
}

/** Link credentials of `peerId`; `member` says which peers count as members (all, by default). */
export async function testLink(peerId: string, member: (peer: string) => boolean = () => true): Promise<LinkCredentials> {
  const pair = await testPair(peerId);
  return new LinkCredentials(pair.ca, pair, member);
}

/** What a link request as a running peer needs: its API (to find its link), data dir (its link key) and swarm key (the hop secret). */
export interface LinkedPeer {
  url: string;
  token: string;
  dataDir: string;
  swarmKey: string;
}

/** An answer read whole. */
export interface LinkAnswer {
  status: number;
  body: string;
}

/**
 * Sends a request to a running peer's API link as that peer itself would (its own link key from
 * its data dir, a hop signed with its swarm key): what another peer does, for tests that need a
 * hop (a create placed on exactly this peer). The caller's token travels, as it does between peers.
 */
export async function asPeer(peer: LinkedPeer, role: HopRole, method: string, path: string, body?: string, options: { token?: string | null; signedPath?: string } = {}): Promise<LinkAnswer> {
  const peers = await (await fetch(`${peer.url}/v1/peers`, { headers: { authorization: `Bearer ${peer.token}` } })).json() as { peers: { id: string; self: boolean; link: string | null }[] };
  const self = peers.peers.find((p) => p.self);
  if (!self?.link) throw new Error(`peer at ${peer.url} shows no link`);
  const dir = join(peer.dataDir, 'link');
  const [ca, cert, key] = await Promise.all(['ca.pem', 'cert.pem', 'key.pem'].map((file) => readFile(join(dir, file), 'utf8')));
  const hops = new HopKeys(await meshSecret(peer.swarmKey, 'hop'), self.id);
  const token = options.token === undefined ? peer.token : options.token;
  const headers: Record<string, string> = { ...hops.headers(role, method, options.signedPath ?? path), 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
  return new Promise((resolve, reject) => {
    const req = https.request(`${self.link}${path}`, {
      method, headers, ca, cert, key, agent: false, servername: self.id.toLowerCase(), checkServerIdentity: () => undefined,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  });
}

import { createHash, randomBytes } from 'node:crypto';
import type { TokenCheck } from '../../proxy/index.ts';
import { PeerError } from '../errors.ts';
import { SPRITE_NAME, TENANT_NAME_RULE } from '../names.ts';
import { ADMIN_ORG, requireOrg } from './orgs.ts';
import type { RecordStore } from './store.ts';
import { tokensTable } from './tables.ts';

/** Who sent a request, resolved once from its bearer token. */
export interface Caller {
  /** The org whose sprites the token sees, and where sprites it creates go. */
  org: string;
  /** Admin tokens see every org's sprites and manage orgs and tokens. */
  admin: boolean;
  tokenName: string;
}

/** A token as listings show it: never the hash, never the secret. */
export interface TokenInfo {
  name: string;
  org: string;
  admin: boolean;
  created: string;
  revoked: boolean;
}

/** Peers' own tokens are named `peer-<peer id>`; user tokens may not take that prefix. */
const PEER_PREFIX = 'peer-';

/** SHA-256 of a token, hex: the only form in which tokens are stored and gossiped. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Publishes a peer's own token (hashed) as an admin token of the `admin` org. A row that exists is
 * only corrected (rows written before tokens had names per peer and an admin flag), never un-revoked.
 */
export function registerPeerToken(mesh: RecordStore, token: string, peerId: string): void {
  const hash = tokenHash(token);
  const name = `${PEER_PREFIX}${peerId}`;
  const row = mesh.store.get(tokensTable, { hash });
  if (row && row.name === name && row.admin && row.org === ADMIN_ORG) return;
  mesh.write((tx) => tx.upsert(tokensTable, { hash, name, org: ADMIN_ORG, admin: true, created: row?.created ?? new Date().toISOString() }));
}

/** The caller a token stands for, or undefined when it is unknown or revoked. */
export function callerOf(store: RecordStore['store'], token: string): Caller | undefined {
  return callerOfHash(store, tokenHash(token));
}

/** The same by hash (what the proxy's login cookie holds). */
export function callerOfHash(store: RecordStore['store'], hash: string): Caller | undefined {
  const row = store.get(tokensTable, { hash });
  if (!row || row.revoked) return undefined;
  return { org: row.org, admin: row.admin, tokenName: row.name };
}

/** Makes a token for `org` and publishes its hash; the secret is returned here and never again. */
export function createToken(mesh: RecordStore, spec: { name: string; org: string; admin: boolean }): TokenInfo & { token: string } {
  checkTokenName(spec.name);
  requireOrg(mesh.store, spec.org);
  if (mesh.store.all(tokensTable).some((row) => row.name === spec.name)) throw new PeerError('ERR_TOKEN_EXISTS', `a token named ${spec.name} exists (names of revoked tokens stay taken)`);
  const token = randomBytes(24).toString('base64url');
  const info: TokenInfo = { name: spec.name, org: spec.org, admin: spec.admin, created: new Date().toISOString(), revoked: false };
  mesh.write((tx) => tx.upsert(tokensTable, { hash: tokenHash(token), ...info }));
  return { ...info, token };
}

/** Every token, by name (peers' tokens included). */
export function listTokens(store: RecordStore['store']): TokenInfo[] {
  return store.all(tokensTable)
    .map(({ name, org, admin, created, revoked }) => ({ name, org, admin, created, revoked }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.created.localeCompare(b.created));
}

/**
 * Revokes every token of that name (two peers may have issued one name at once before they
 * synced); revoking a revoked token is not an error. Peers' own tokens cannot be revoked here.
 */
export function revokeToken(mesh: RecordStore, name: string): void {
  if (name.startsWith(PEER_PREFIX)) throw new PeerError('ERR_FORBIDDEN', 'a peer\'s own token cannot be revoked through the API');
  checkTokenName(name);
  const rows = mesh.store.all(tokensTable).filter((row) => row.name === name);
  if (rows.length === 0) throw new PeerError('ERR_TOKEN_NOT_FOUND', `no token named ${name}`);
  const live = rows.filter((row) => !row.revoked);
  if (live.length === 0) return;
  mesh.write((tx) => {
    for (const row of live) tx.upsert(tokensTable, { hash: row.hash, revoked: true });
  });
}

function checkTokenName(name: string): void {
  if (!SPRITE_NAME.test(name)) throw new PeerError('ERR_BAD_REQUEST', `token ${TENANT_NAME_RULE}`);
  if (name.startsWith(PEER_PREFIX)) throw new PeerError('ERR_BAD_REQUEST', `token names starting with ${PEER_PREFIX} belong to peers`);
}

/** The proxy's view of the tokens: owners by token or hash, and a change feed so its cache drops revoked ones. */
export function tokenCheck(store: RecordStore['store']): TokenCheck & Required<Pick<TokenCheck, 'onChange'>> {
  return {
    owner: (token) => callerOf(store, token),
    ownerOfHash: (hash) => callerOfHash(store, hash),
    onChange: (listener) => store.subscribe(tokensTable, () => listener()),
  };
}

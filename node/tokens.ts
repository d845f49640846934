import { createHash } from 'node:crypto';
import { tokensTable, type Mesh } from '../gossip/index.ts';

/** SHA-256 of a token, hex: the only form in which tokens are stored and gossiped. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Publishes a token (hashed) to the mesh so every peer accepts it. */
export function registerToken(mesh: Mesh, token: string, name: string): void {
  const hash = tokenHash(token);
  if (mesh.store.get(tokensTable, { hash })) return;
  mesh.write((tx) => tx.upsert(tokensTable, { hash, name, created: new Date().toISOString() }));
}

/** True when `token` is known to the mesh and not revoked. */
export function tokenValid(mesh: Mesh, token: string): boolean {
  const row = mesh.store.get(tokensTable, { hash: tokenHash(token) });
  return row !== undefined && !row.revoked;
}

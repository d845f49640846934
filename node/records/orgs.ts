import { PeerError } from '../errors.ts';
import { SPRITE_NAME, TENANT_NAME_RULE } from '../names.ts';
import type { RecordStore } from './store.ts';
import { orgsTable, spritesTable, tokensTable } from './tables.ts';

/** The org of the peers' own tokens and of every sprite and token from before orgs existed. */
export const ADMIN_ORG = 'admin';

/** An org as listings show it. */
export interface OrgInfo {
  name: string;
  created: string;
  /** Sprites of the org in the mesh now. */
  sprites: number;
  /** Tokens of the org that are not revoked. */
  tokens: number;
}

/** Writes the `admin` org's row once; peers that start at once converge on one row. */
export function ensureAdminOrg(mesh: RecordStore): void {
  if (mesh.store.get(orgsTable, { name: ADMIN_ORG })) return;
  mesh.write((tx) => tx.upsert(orgsTable, { name: ADMIN_ORG, created: new Date().toISOString() }));
}

/** Creates an org; ERR_ORG_EXISTS when this peer already knows one of that name. */
export function createOrg(mesh: RecordStore, name: string): OrgInfo {
  if (!SPRITE_NAME.test(name)) throw new PeerError('ERR_BAD_REQUEST', `org ${TENANT_NAME_RULE}`);
  if (name === ADMIN_ORG || mesh.store.get(orgsTable, { name })) throw new PeerError('ERR_ORG_EXISTS', `an org named ${name} exists`);
  const created = new Date().toISOString();
  mesh.write((tx) => tx.upsert(orgsTable, { name, created }));
  return { name, created, sprites: 0, tokens: 0 };
}

/** Every org with its counts, by name. */
export function listOrgs(store: RecordStore['store']): OrgInfo[] {
  const orgs = new Map<string, OrgInfo>();
  for (const row of store.all(orgsTable)) orgs.set(row.name, { name: row.name, created: row.created, sprites: 0, tokens: 0 });
  for (const row of store.all(spritesTable)) {
    const org = orgs.get(row.org);
    if (org) org.sprites += 1;
  }
  for (const row of store.all(tokensTable)) {
    const org = orgs.get(row.org);
    if (org && !row.revoked) org.tokens += 1;
  }
  return [...orgs.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Throws ERR_ORG_NOT_FOUND unless the org exists (the admin org always does). */
export function requireOrg(store: RecordStore['store'], name: string): void {
  if (name === ADMIN_ORG) return;
  if (!SPRITE_NAME.test(name) || !store.get(orgsTable, { name })) throw new PeerError('ERR_ORG_NOT_FOUND', `no org named ${name}`);
}

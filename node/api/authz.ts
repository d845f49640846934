import { PeerError } from '../errors.ts';
import type { Caller } from '../records/index.ts';

/** Whether the caller may see and touch a sprite of `org`: its own org's, or any for an admin. */
export function sees(caller: Caller, org: string): boolean {
  return caller.admin || caller.org === org;
}

/** Throws ERR_FORBIDDEN unless the caller holds an admin token; `need` ends the message ("orgs are managed with one"). */
export function requireAdmin(caller: Caller, need: string): void {
  if (!caller.admin) throw new PeerError('ERR_FORBIDDEN', `token ${caller.tokenName} of org ${caller.org} is not an admin token; ${need}`);
}

import { PeerError } from './errors.ts';

/**
 * Sprite names follow DNS-label rules so they work as URL host labels; org, token and image names
 * follow the same rule.
 */
export const SPRITE_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Message for a sprite name that breaks the rule. */
export const SPRITE_NAME_RULE = "sprite name must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'";

/** What a name that breaks the sprite name rule (which org and token names follow) is told, after "org" or "token". */
export const TENANT_NAME_RULE = "name must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'";

/** Service names: what sprite-init accepts as a log file name. */
export const SERVICE_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,62}$';
const SERVICE_NAME = new RegExp(SERVICE_NAME_PATTERN);

/** Throws ERR_BAD_NAME unless `name` is a valid sprite name. */
export function checkSpriteName(name: string): void {
  if (!SPRITE_NAME.test(name)) throw new PeerError('ERR_BAD_NAME', SPRITE_NAME_RULE);
}

/** Returns `name` when it is a valid service name; throws ERR_BAD_REQUEST otherwise. */
export function checkServiceName(name: string): string {
  if (!SERVICE_NAME.test(name)) throw new PeerError('ERR_BAD_REQUEST', 'service name must be 1-63 of a-z, 0-9, _ and -, starting with a letter or digit');
  return name;
}

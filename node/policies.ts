import { PeerError } from './errors.ts';

/**
 * The policy documents of a sprite, as Sprites' SDK sends and reads them, and their checks. The
 * same checks run on a request body and on a document read back from the replicated store.
 */

/** A network rule: a domain (or `*.domain`, or `*`) allowed or denied, or a preset included. */
export type NetworkRule = { domain: string; action: 'allow' | 'deny' } | { include: 'defaults' };

export interface NetworkPolicy {
  rules: NetworkRule[];
}

/** Process privileges (the SDK sends these field names as they are, in camelCase). */
export interface PrivilegesPolicy {
  profile?: '' | 'minimal' | 'standard' | 'privileged';
  devices?: string[];
  noNewPrivileges?: boolean;
}

/** Resource limits; on the wire `memory.limit_mb`. */
export interface ResourcesPolicy {
  memory?: { limit_mb: number; autoscale?: boolean };
}

/** The smallest memory limit a sprite can run with (the operator's own minimum for --sprite-memory). */
export const MIN_MEMORY_MB = 16;
const MAX_RULES = 256;
const MAX_DEVICES = 64;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DEVICE = /^\/dev(\/[A-Za-z0-9_.+-]+)+$/;
const PROFILES = ['', 'minimal', 'standard', 'privileged'];

function fail(message: string): never {
  throw new PeerError('ERR_BAD_REQUEST', message);
}

function object(value: unknown, what: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${what} must be an object`);
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).find((key) => !allowed.includes(key));
  if (unknown !== undefined) fail(`${what}.${unknown} is not a known field`);
  return record;
}

/**
 * A domain pattern, lowercased: a DNS name (labels of a-z, 0-9 and '-'), the same under a leading
 * `*.` (any subdomain), or `*` (any domain). A `*` anywhere else is refused.
 */
export function checkDomain(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) fail(`${what} must be a domain name of at most 253 characters`);
  const domain = value.toLowerCase();
  if (domain === '*') return domain;
  const labels = domain.split('.');
  const named = labels[0] === '*' ? labels.slice(1) : labels;
  if (named.length === 0 || !named.every((label) => LABEL.test(label))) {
    fail(`${what} ${JSON.stringify(value)} must be a domain name (example.com), a wildcard (*.example.com) or *`);
  }
  return domain;
}

/** Checks a network policy `{rules: [...]}`; ERR_BAD_REQUEST names the first problem. */
export function parseNetworkPolicy(value: unknown): NetworkPolicy {
  const body = object(value, 'body', ['rules']);
  if (!Array.isArray(body.rules)) fail('body.rules must be an array');
  if (body.rules.length > MAX_RULES) fail(`body.rules must have at most ${MAX_RULES} rules`);
  const rules = body.rules.map((raw: unknown, i: number): NetworkRule => {
    const what = `body.rules[${i}]`;
    const rule = object(raw, what, ['domain', 'action', 'include']);
    if (rule.include !== undefined) {
      if (rule.domain !== undefined || rule.action !== undefined) fail(`${what} has either include, or domain and action`);
      if (rule.include !== 'defaults') fail(`${what}.include must be "defaults"`);
      return { include: 'defaults' };
    }
    if (rule.action !== 'allow' && rule.action !== 'deny') fail(`${what}.action must be allow or deny`);
    return { domain: checkDomain(rule.domain, `${what}.domain`), action: rule.action };
  });
  return { rules };
}

/** Checks a privileges policy; `no_new_privileges` is taken for `noNewPrivileges`. */
export function parsePrivilegesPolicy(value: unknown): PrivilegesPolicy {
  const body = object(value, 'body', ['profile', 'devices', 'noNewPrivileges', 'no_new_privileges']);
  const policy: PrivilegesPolicy = {};
  if (body.profile !== undefined) {
    if (typeof body.profile !== 'string' || !PROFILES.includes(body.profile)) fail('body.profile must be "", minimal, standard or privileged');
    policy.profile = body.profile as PrivilegesPolicy['profile'];
  }
  if (body.devices !== undefined) {
    const devices = body.devices;
    if (!Array.isArray(devices) || devices.length > MAX_DEVICES) fail(`body.devices must be an array of at most ${MAX_DEVICES} device paths`);
    for (const [i, device] of devices.entries()) {
      if (typeof device !== 'string' || device.length > 128 || !DEVICE.test(device) || device.split('/').some((part) => part === '.' || part === '..')) {
        fail(`body.devices[${i}] must be a path under /dev`);
      }
    }
    policy.devices = [...new Set(devices as string[])];
  }
  const noNew = body.noNewPrivileges ?? body.no_new_privileges;
  if (noNew !== undefined) {
    if (typeof noNew !== 'boolean') fail('body.noNewPrivileges must be true or false');
    policy.noNewPrivileges = noNew;
  }
  return policy;
}

/** Checks a resources policy `{memory: {limit_mb, autoscale}}` (not its bound: that is the peer's). */
export function parseResourcesPolicy(value: unknown): ResourcesPolicy {
  const body = object(value, 'body', ['memory']);
  if (body.memory === undefined) return {};
  const memory = object(body.memory, 'body.memory', ['limit_mb', 'autoscale']);
  const limit = memory.limit_mb;
  if (!Number.isInteger(limit) || (limit as number) < MIN_MEMORY_MB) fail(`body.memory.limit_mb must be an integer of at least ${MIN_MEMORY_MB}`);
  if (memory.autoscale !== undefined && typeof memory.autoscale !== 'boolean') fail('body.memory.autoscale must be true or false');
  return { memory: { limit_mb: limit as number, ...(memory.autoscale === undefined ? {} : { autoscale: memory.autoscale }) } };
}

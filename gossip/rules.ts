import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { ValueCheck } from './store/schema.ts';
import type { SqlValue } from './store/values.ts';

/**
 * Content rules for values that arrive from other peers (see `withRules`): each returns undefined
 * for an acceptable value and a short reason otherwise. Whoever holds the swarm key can write any
 * row, so a value is checked for what it means before it can reach a path, a command or a socket.
 */

/** Text matching `pattern` (anchored by the caller), named `what` in the reason. */
export function textMatching(pattern: RegExp, what: string): ValueCheck {
  return (value) => (typeof value === 'string' && pattern.test(value) ? undefined : `is not ${what}`);
}

/** One of the given texts. */
export function oneOf(values: readonly string[]): ValueCheck {
  return (value) => (typeof value === 'string' && values.includes(value) ? undefined : `is not one of ${values.join(', ')}`);
}

/** A number in [min, max]. */
export function numberIn(min: number, max: number): ValueCheck {
  return (value) => (typeof value === 'number' && value >= min && value <= max ? undefined : `is not in ${min}..${max}`);
}

/** Printable text: at most `max` characters, no control characters (no NUL, no newline). */
export function printable(max: number): ValueCheck {
  return (value) => {
    if (typeof value !== 'string' || value.length > max) return `is not text of at most ${max} characters`;
    return /[\u0000-\u001f\u007f]/.test(value) ? 'has control characters' : undefined;
  };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** An ISO 8601 date and time, as `Date.toISOString` writes it (an offset is accepted too). */
export const isoTime: ValueCheck = (value) => (typeof value === 'string' && ISO_TIME.test(value) && !Number.isNaN(Date.parse(value)) ? undefined : 'is not an ISO time');

/** A libp2p peer id in its string form. */
export const peerIdText: ValueCheck = (value) => {
  if (typeof value !== 'string' || value.length > 128 || !/^[1-9A-HJ-NP-Za-km-z]+$/.test(value)) return 'is not a peer id';
  try {
    return peerIdFromString(value).toString() === value ? undefined : 'is not a peer id in its canonical form';
  } catch {
    return 'is not a peer id';
  }
};

/**
 * A base URL of one of `protocols` and nothing more: scheme, host and port, in the form
 * `URL.origin` gives (no user or password, no path, query or fragment).
 */
export function originUrl(protocols: readonly string[]): ValueCheck {
  return (value) => (typeof value === 'string' && originProblem(value, protocols) === undefined ? undefined : `is not a ${protocols.join(' or ')} URL of only a host and port`);
}

function originProblem(text: string, protocols: readonly string[]): string | undefined {
  if (text.length > 300) return 'too long';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'unparsable';
  }
  if (!protocols.includes(url.protocol.slice(0, -1)) || !url.hostname) return 'protocol';
  return url.origin === text ? undefined : 'not an origin';
}

/** A DNS name: dot-separated labels of a-z, 0-9 and '-', at most 253 characters. */
export const dnsName: ValueCheck = (value) => {
  if (typeof value !== 'string' || value.length === 0 || value.length > 253) return 'is not a DNS name';
  return value.split('.').every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(label)) ? undefined : 'is not a DNS name';
};

/** JSON text whose parsed value `accept` approves (`accept` returns a reason or undefined). */
export function jsonText(accept: (parsed: unknown) => string | undefined): ValueCheck {
  return (value: SqlValue) => {
    if (typeof value !== 'string') return 'is not JSON text';
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      return 'is not JSON';
    }
    return accept(parsed);
  };
}

/** A multiaddr a peer can be dialled at (parses, at most 512 characters). */
export function isMultiaddr(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > 512 || !value.startsWith('/')) return false;
  try {
    multiaddr(value);
    return true;
  } catch {
    return false;
  }
}

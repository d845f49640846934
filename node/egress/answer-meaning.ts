import { RCODE, TYPE, type Answer } from './dns-wire.ts';

/** Admitted addresses stay admitted at least this long (a 0-TTL answer still has to be connected to)... */
export const MIN_ADMIT_SECONDS = 5;
/** ... and at most this long before a new lookup must renew them. */
export const MAX_ADMIT_SECONDS = 3600;
/** The longest an answer is cached, and the longest a negative one is. */
const MAX_CACHE_SECONDS = 3600;
const MAX_NEGATIVE_SECONDS = 300;
/** CNAME hops followed from the queried name; a longer chain admits nothing. */
const MAX_CHAIN = 8;

/** The addresses an allowed answer lets its client reach, and for how long (seconds, clamped). */
export interface Admission {
  addresses: string[];
  ttl: number;
}

export function clampAdmitTtl(seconds: number): number {
  return Math.min(MAX_ADMIT_SECONDS, Math.max(MIN_ADMIT_SECONDS, Math.floor(seconds)));
}

/**
 * The A/AAAA addresses an answer gives for `name`: follows the CNAME chain from the queried name
 * and takes the address records of its last name only, so records about unrelated names that an
 * upstream slips into the answer admit nothing. The TTL is the least along the chain.
 */
export function admission(answer: Answer, name: string): Admission {
  let current = name;
  let ttl = Infinity;
  for (let hop = 0; hop <= MAX_CHAIN; hop++) {
    const alias = answer.answers.find((record) => record.type === TYPE.CNAME && record.name === current);
    if (!alias) break;
    if (hop === MAX_CHAIN) return { addresses: [], ttl: 0 };
    ttl = Math.min(ttl, alias.ttl);
    current = alias.target!;
  }
  const addresses: string[] = [];
  for (const record of answer.answers) {
    if (record.address === undefined || record.name !== current) continue;
    addresses.push(record.address);
    ttl = Math.min(ttl, record.ttl);
  }
  return addresses.length === 0 ? { addresses, ttl: 0 } : { addresses: [...new Set(addresses)], ttl: clampAdmitTtl(ttl) };
}

/**
 * How long an answer may be served from the cache, in seconds (0: not at all): the least TTL of
 * its records; a name that does not exist or has no record of the type, the SOA's negative TTL
 * (RFC 2308); anything else (SERVFAIL, REFUSED, a truncated answer) is not cached.
 */
export function cacheSeconds(answer: Answer): number {
  const { rcode, tc } = answer.header;
  if (tc) return 0;
  if (rcode === RCODE.NOERROR && answer.answers.length > 0) {
    return Math.min(MAX_CACHE_SECONDS, ...answer.answers.map((record) => record.ttl));
  }
  if (rcode !== RCODE.NXDOMAIN && rcode !== RCODE.NOERROR) return 0;
  const soa = answer.authority.find((record) => record.type === TYPE.SOA);
  return soa ? Math.min(MAX_NEGATIVE_SECONDS, soa.ttl, soa.minimum ?? 0) : 0;
}

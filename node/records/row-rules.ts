import { X509Certificate, createPrivateKey } from 'node:crypto';
import { dnsName, isoTime, jsonText, numberIn, oneOf, originUrl, peerIdText, printable, textMatching, withRules, type TableDef, type ValueCheck } from '../../gossip/index.ts';
import { URL_AUTH_MODES } from '../../proxy/index.ts';
import { SERVICE_NAME_PATTERN, SPRITE_NAME } from '../names.ts';
import { parseNetworkPolicy, parsePrivilegesPolicy, parseResourcesPolicy } from '../policies.ts';
import { parseLineage } from '../sprites/lineage.ts';
import { parseUsage } from './quotas.ts';
import { MAX_LABELS, readCpus, readEnvironment, readLabels, readRamMb } from '../sprite-settings.ts';
import { RECORD_TABLES } from './tables.ts';

/**
 * The content rules of every replicated column (see gossip's `withRules`): a row from another peer
 * is merged only when each of its values fits. Whoever holds the swarm key writes rows, and their
 * values name host directories (a sprite's id), cgroups, volumes, files and sockets, so each is
 * held to the shape this code writes. A new column needs a rule here (test/node/row-rules.test.ts
 * fails otherwise); booleans need none, their type is their content.
 */

/** A sprite's internal id as `newId` makes it: it names its directory, volume and cgroup. */
export const SPRITE_ID = /^[0-9a-f]{10}$/;
const PEER_TOKEN = 'peer-';
const SPRITE_STATES = ['running', 'warm', 'cold', 'stopped', 'failed'];
const DOC_KINDS = ['policy/network', 'policy/privileges', 'policy/resources', 'lineage', 'usage'];
const MAX_SERVICES = 256;
const MAX_DOC_CHARS = 60 * 1024;

const name = textMatching(SPRITE_NAME, 'a name of 1-63 a-z, 0-9 and -');
const spriteId = textMatching(SPRITE_ID, 'a sprite id (10 hex digits)');
const count = numberIn(0, Number.MAX_SAFE_INTEGER);
const serviceName = new RegExp(SERVICE_NAME_PATTERN);

/** Free text shown only through the API as JSON (an error message): any text the store's size cap lets through. */
const freeText: ValueCheck = (value) => (typeof value === 'string' ? undefined : 'is not text');

/** Where a disk lives: a file:// or s3:// URL without credentials, as `redactUrl` leaves it. */
const storeUrl: ValueCheck = (value) => {
  const bad = 'is not a file:// or s3:// URL without credentials';
  if (typeof value !== 'string' || printable(1024)(value)) return bad;
  try {
    const url = new URL(value);
    return (url.protocol === 'file:' || url.protocol === 's3:') && !url.username && !url.password ? undefined : bad;
  } catch {
    return bad;
  }
};

const services = jsonText((value) => {
  if (!Array.isArray(value) || value.length > MAX_SERVICES) return `is not a JSON array of at most ${MAX_SERVICES} services`;
  const named = (spec: unknown): boolean => typeof spec === 'object' && spec !== null && typeof (spec as { name?: unknown }).name === 'string' && serviceName.test((spec as { name: string }).name);
  return value.every(named) ? undefined : 'has a service without a valid name';
});

const labels = jsonText((value) => (Array.isArray(value) && value.length <= MAX_LABELS && readLabels(JSON.stringify(value)).length === value.length ? undefined : 'is not a list of valid labels'));

const environment = jsonText((value) => {
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  return isObject && Object.keys(readEnvironment(JSON.stringify(value))).length === Object.keys(value).length ? undefined : 'is not a valid environment';
});

const tokenName: ValueCheck = (value) => {
  if (typeof value === 'string' && SPRITE_NAME.test(value)) return undefined;
  if (typeof value === 'string' && value.startsWith(PEER_TOKEN) && !peerIdText(value.slice(PEER_TOKEN.length))) return undefined;
  return 'is not a token name (a name, or peer- and a peer id)';
};

function pem(text: unknown, parse: (text: string) => unknown): boolean {
  if (typeof text !== 'string' || !text.startsWith('-----BEGIN ')) return false;
  try {
    parse(text);
    return true;
  } catch {
    return false;
  }
}

const certBundle = jsonText((value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not a JSON object';
  const { ca, caKey, cert, key } = value as Record<string, unknown>;
  const certificate = (text: string): unknown => new X509Certificate(text);
  const ok = pem(cert, certificate) && pem(key, createPrivateKey) && (ca === null || ca === undefined || pem(ca, certificate)) && (caKey === undefined || pem(caKey, createPrivateKey));
  return ok ? undefined : 'is not a bundle of PEM certificates and keys';
});

/** A sprite document as one of its kinds' own parsers accepts it (the row's `kind` is another column). */
const DOC_PARSERS: readonly ((value: unknown) => unknown)[] = [parseNetworkPolicy, parsePrivilegesPolicy, parseResourcesPolicy, parseLineage, parseUsage];
const spriteDoc: ValueCheck = (value) => {
  if (typeof value !== 'string' || value.length > MAX_DOC_CHARS) return 'is over 60 KiB';
  const accepted = (doc: unknown): boolean => DOC_PARSERS.some((parse) => {
    try {
      parse(doc);
      return true;
    } catch {
      return false;
    }
  });
  return jsonText((doc) => (accepted(doc) ? undefined : 'is no policy or lineage document'))(value);
};

/** The rules, by table and column. */
export const RECORD_RULES: Readonly<Record<string, Readonly<Record<string, ValueCheck>>>> = {
  sprites: {
    name, id: spriteId, owner: peerIdText, epoch: count, state: oneOf(SPRITE_STATES), url_auth: oneOf(URL_AUTH_MODES), org: name,
    volume: storeUrl, http_port: numberIn(1, 65_535), services, created: isoTime, updated: isoTime, reason: freeText, labels, environment,
    ram_mb: (value) => (readRamMb(value as number) === undefined ? 'is not a memory size in MiB' : undefined),
    cpus: (value) => (readCpus(value as number) === undefined ? 'is not a CPU count' : undefined),
    version: textMatching(/^[A-Za-z0-9._-]{1,64}$/, 'a runtime version'), last_running_at: isoTime, last_warming_at: isoTime,
  },
  tokens: { hash: textMatching(/^[0-9a-f]{64}$/, 'a SHA-256 hash in hex'), name: tokenName, org: name, created: isoTime },
  orgs: { name, created: isoTime, max_sprites: count, max_running: count, max_checkpoints: count, max_storage_bytes: count },
  proxy_certs: { domain: dnsName, bundle: certBundle, created: isoTime },
  link_ca: {
    id: oneOf(['mesh']),
    // node/links/pki.ts parses it again (a CA certificate and its key) before any peer signs with it.
    pair: jsonText((value) => {
      const { cert, key } = (value ?? {}) as Record<string, unknown>;
      return pem(cert, (text: string) => new X509Certificate(text)) && pem(key, createPrivateKey) ? undefined : 'is not {cert, key} in PEM';
    }),
    created: isoTime,
  },
  images: {
    name, volume: textMatching(/^img-[a-z0-9][a-z0-9-]{0,80}$/, 'an image volume id (img-...)'), source: textMatching(/^[^\0]{1,4096}$/, 'a description without NUL'), bytes: count,
    peer: peerIdText, created: isoTime,
  },
  sprite_docs: {
    sprite: spriteId, kind: oneOf(DOC_KINDS), doc: spriteDoc, updated: isoTime,
  },
};

/** The `proxy` column of the peers table: JSON `{http, https, domain}` with bare origins (see proxy/routes.ts). */
export const PROXY_COLUMN_RULE: ValueCheck = jsonText((value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'is not a JSON object';
  const { http, https, domain, link } = value as Record<string, unknown>;
  const ok = !originUrl(['http'])(http as string) && (https === null || https === undefined || !originUrl(['https'])(https as string)) && !dnsName(domain as string)
    && (link === null || link === undefined || !originUrl(['https'])(link as string));
  return ok ? undefined : 'is not {http, https, domain, link} with bare origins and a DNS name';
});

/** The record tables with their rules attached: what the peer opens its mesh store with. */
export const CHECKED_RECORD_TABLES: readonly TableDef[] = RECORD_TABLES.map((table) => withRules(table, RECORD_RULES[table.name] ?? {}));

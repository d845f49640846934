import type { IncomingHttpHeaders } from 'node:http';

/** Headers that describe one connection, never the message (RFC 9110 7.6.1), plus proxy credentials. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Headers a client could forge to mislead the sprite about where a request came from. */
const CLIENT_FORWARDING = ['forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'x-real-ip'];

/**
 * Removes hop-by-hop headers and those the Connection header names. For a WebSocket upgrade the
 * `upgrade` header and `connection: upgrade` stay, because the next hop needs them.
 */
export function stripHopByHop(headers: IncomingHttpHeaders | Record<string, unknown>, upgrade = false): void {
  const connection = headers.connection;
  if (typeof connection === 'string') {
    for (const token of connection.split(',')) {
      const name = token.trim().toLowerCase();
      if (name && name !== 'upgrade') delete headers[name];
    }
  }
  const protocol = headers.upgrade;
  for (const name of HOP_BY_HOP) delete headers[name];
  if (upgrade && typeof protocol === 'string') {
    headers.connection = 'upgrade';
    headers.upgrade = protocol;
  }
}

/** Sets X-Forwarded-For/-Proto/-Host for a request from a client, replacing anything it sent. */
export function setForwarded(headers: IncomingHttpHeaders, client: { address: string | undefined; proto: 'http' | 'https'; host: string }): void {
  for (const name of CLIENT_FORWARDING) delete headers[name];
  if (client.address) headers['x-forwarded-for'] = client.address.startsWith('::ffff:') ? client.address.slice(7) : client.address;
  headers['x-forwarded-proto'] = client.proto;
  headers['x-forwarded-host'] = client.host;
}

/** The bearer token of an Authorization header, if it has one. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer\s+(\S{1,512})$/i.exec(headers.authorization ?? '');
  return match?.[1];
}

/** Every value of cookie `name` in the request (a sibling sprite may have planted more than one), at most `max`. */
export function cookieValues(headers: IncomingHttpHeaders, name: string, max = 8): string[] {
  const values: string[] = [];
  for (const part of cookieParts(headers)) {
    const equals = part.indexOf('=');
    if (equals !== -1 && part.slice(0, equals).trim() === name) values.push(part.slice(equals + 1).trim());
    if (values.length === max) break;
  }
  return values;
}

/** Removes every cookie named one of `names` (any case, any spacing) from the Cookie header, so the sprite never sees them. */
export function stripCookies(headers: IncomingHttpHeaders, names: readonly string[]): void {
  if (headers.cookie === undefined) return;
  const lower = names.map((name) => name.toLowerCase());
  const rest = cookieParts(headers).filter((part) => {
    const equals = part.indexOf('=');
    return !lower.includes((equals === -1 ? part : part.slice(0, equals)).trim().toLowerCase());
  });
  if (rest.length === 0) delete headers.cookie;
  else headers.cookie = rest.join('; ');
}

function cookieParts(headers: IncomingHttpHeaders): string[] {
  const raw = headers.cookie as string | string[] | undefined;
  if (raw === undefined) return [];
  const text = Array.isArray(raw) ? raw.join('; ') : raw;
  return text.split(';').map((part) => part.trim()).filter((part) => part !== '');
}

import WebSocket from 'ws';
import type { Auth } from '../../node/api/router.ts';

/**
 * The authorization matrix: every API route (rows) called as each kind of caller (columns), with the
 * answer each must get. Rows are keyed as docs/API.md and test/helpers/routes.ts name routes, so a
 * route added to the table without a row fails the test. A column is one entry of COLUMNS.
 */

/** A row: the rule the route must declare, and a call that would change something if it were let through. */
export interface Row {
  rule: Auth;
  /** The path to call, `{sprite}` for the target sprite; default: the key's path with the sprite's name for its `{}`. */
  path?: string;
  body?: unknown;
}

/** What a refused call answers. */
export interface Refusal {
  status: number;
  error: string;
}

export const UNAUTHORIZED: Refusal = { status: 401, error: 'ERR_UNAUTHORIZED' };
export const FORBIDDEN: Refusal = { status: 403, error: 'ERR_FORBIDDEN' };
export const NOT_FOUND: Refusal = { status: 404, error: 'ERR_SPRITE_NOT_FOUND' };

/** The tokens the columns use: `org` is the target sprite's org, `otherOrg` another, `revoked` was of `org`. */
export interface Tokens {
  org: string;
  otherOrg: string;
  revoked: string;
}

/** A kind of caller: the headers it sends, and what a route of each rule answers it (undefined: the call is allowed). */
export interface Column {
  name: string;
  headers(tokens: Tokens): Record<string, string>;
  expect(rule: Auth): Refusal | undefined;
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

export const COLUMNS: Column[] = [
  { name: 'no token', headers: () => ({}), expect: () => UNAUTHORIZED },
  // A valid token in another scheme, an empty bearer, a bearer that is no token.
  { name: 'malformed token', headers: (t) => ({ authorization: `Basic ${Buffer.from(`${t.org}:`).toString('base64')}` }), expect: () => UNAUTHORIZED },
  { name: 'empty bearer', headers: () => ({ authorization: 'Bearer ' }), expect: () => UNAUTHORIZED },
  { name: 'unknown token', headers: () => bearer('x'.repeat(32)), expect: () => UNAUTHORIZED },
  { name: 'revoked token', headers: (t) => bearer(t.revoked), expect: () => UNAUTHORIZED },
  // Another org's sprite answers as a missing one; `token` routes scope their answers to the caller's org.
  { name: "another org's token", headers: (t) => bearer(t.otherOrg), expect: (rule) => (rule === 'org' ? NOT_FOUND : rule === 'token' ? undefined : FORBIDDEN) },
  { name: "the sprite's org's token", headers: (t) => bearer(t.org), expect: (rule) => (rule === 'admin' || rule === 'peer' ? FORBIDDEN : undefined) },
  // Hop headers as a client could forge them on the public listener: old-style roles, and the
  // signed shape with a made-up MAC. They grant nothing: the answers are those of the bare token.
  { name: "another org's token with forged hop headers", headers: (t) => ({ ...bearer(t.otherOrg), ...forgedHop('owner') }), expect: (rule) => (rule === 'org' ? NOT_FOUND : rule === 'token' ? undefined : FORBIDDEN) },
  { name: "the sprite's org's token posing as a peer", headers: (t) => ({ ...bearer(t.org), ...forgedHop('adopt') }), expect: (rule) => (rule === 'admin' || rule === 'peer' ? FORBIDDEN : undefined) },
];

/** A hop header of the signed shape (`ROLE PEER EXPIRY MAC`) that no peer signed, with the arbiter's companions. */
function forgedHop(role: string): Record<string, string> {
  const expiry = String(Date.now() + 60_000);
  return {
    'x-sprite-hop': `${role} 12D3KooWForgedPeerForgedPeerForgedPeerForgedPeerForg ${expiry} ${'0'.repeat(64)}`,
    'x-sprite-origin': '12D3KooWForgedPeer;warm',
    'x-sprite-deadline': expiry,
  };
}

const S = '/v1/sprites/{sprite}';
const SVC = `${S}/services/web`;

/** One row per route of the API. Bodies and queries are what an attacker would send: each would change state if it got through. */
export const ROWS: Record<string, Row> = {
  'POST /v1/sprites': { rule: 'token', body: { name: 'pwned' } },
  'GET /v1/sprites': { rule: 'token' },
  'POST /v1/sprites/{}/adopt': { rule: 'peer', body: { start: false } },
  'GET /v1/sprites/{}': { rule: 'org' },
  'PUT /v1/sprites/{}': { rule: 'org', body: { labels: ['pwned'], url_settings: { auth: 'public' } } },
  'DELETE /v1/sprites/{}': { rule: 'org' },
  'POST /v1/sprites/{}/start': { rule: 'org' },
  'POST /v1/sprites/{}/stop': { rule: 'org' },
  'POST /v1/sprites/{}/restart': { rule: 'org' },
  'GET /v1/sprites/{}/check': { rule: 'org' },
  'POST /v1/sprites/{}/upgrade': { rule: 'org' },
  'POST /v1/sprites/{}/checkpoint': { rule: 'org', body: { comment: 'pwned' } },
  'GET /v1/sprites/{}/checkpoints': { rule: 'org' },
  'GET /v1/sprites/{}/checkpoints/{}': { rule: 'org', path: `${S}/checkpoints/v1` },
  'DELETE /v1/sprites/{}/checkpoints/{}': { rule: 'org', path: `${S}/checkpoints/v1` },
  'POST /v1/sprites/{}/checkpoints/{}/restore': { rule: 'org', path: `${S}/checkpoints/v1/restore` },
  'GET /v1/sprites/{}/exec': { rule: 'org' },
  'POST /v1/sprites/{}/exec': { rule: 'org', path: `${S}/exec?cmd=touch&cmd=/authz/pwned` },
  'POST /v1/sprites/{}/exec/{}/kill': { rule: 'org', path: `${S}/exec/1/kill?signal=KILL` },
  'GET /v1/sprites/{}/services': { rule: 'org' },
  'POST /v1/sprites/{}/services/signal': { rule: 'org', body: { name: 'web', signal: 'KILL' } },
  'PUT /v1/sprites/{}/services/{}': { rule: 'org', path: `${SVC}?duration=0s`, body: { cmd: '/bin/sh', args: ['-c', 'touch /authz/pwned'] } },
  'GET /v1/sprites/{}/services/{}': { rule: 'org', path: SVC },
  'DELETE /v1/sprites/{}/services/{}': { rule: 'org', path: SVC },
  'POST /v1/sprites/{}/services/{}/start': { rule: 'org', path: `${SVC}/start?duration=0s` },
  'POST /v1/sprites/{}/services/{}/restart': { rule: 'org', path: `${SVC}/restart?duration=0s` },
  'POST /v1/sprites/{}/services/{}/stop': { rule: 'org', path: `${SVC}/stop` },
  'GET /v1/sprites/{}/services/{}/logs': { rule: 'org', path: `${SVC}/logs` },
  'GET /v1/sprites/{}/logs': { rule: 'org' },
  'GET /v1/sprites/{}/policy/network': { rule: 'org' },
  'POST /v1/sprites/{}/policy/network': { rule: 'org', body: { rules: [{ domain: '*', action: 'deny' }] } },
  'PUT /v1/sprites/{}/policy/network': { rule: 'org', body: { rules: [{ domain: '*', action: 'deny' }] } },
  'GET /v1/sprites/{}/policy/privileges': { rule: 'org' },
  'POST /v1/sprites/{}/policy/privileges': { rule: 'org', body: { profile: 'privileged' } },
  'PUT /v1/sprites/{}/policy/privileges': { rule: 'org', body: { profile: 'privileged' } },
  'DELETE /v1/sprites/{}/policy/privileges': { rule: 'org' },
  'GET /v1/sprites/{}/policy/resources': { rule: 'org' },
  'POST /v1/sprites/{}/policy/resources': { rule: 'org', body: { memory: { limit_mb: 64 } } },
  'PUT /v1/sprites/{}/policy/resources': { rule: 'org', body: { memory: { limit_mb: 64 } } },
  'DELETE /v1/sprites/{}/policy/resources': { rule: 'org' },
  'GET /v1/pool': { rule: 'admin' },
  'GET /v1/peers': { rule: 'admin' },
  'POST /v1/peers/{}/drain': { rule: 'admin', path: '/v1/peers/self/drain' },
  'POST /v1/peers/{}/token': { rule: 'admin', path: '/v1/peers/self/token' },
  'GET /v1/mesh/health': { rule: 'admin' },
  'GET /v1/proxy/ca': { rule: 'token' },
  'POST /v1/orgs': { rule: 'admin', body: { name: 'pwned' } },
  'GET /v1/orgs': { rule: 'admin' },
  'GET /v1/orgs/{}': { rule: 'admin', path: '/v1/orgs/acme' },
  // An org's own token raising its quotas is the case that matters.
  'PUT /v1/orgs/{}/quotas': { rule: 'admin', path: '/v1/orgs/acme/quotas', body: { sprites: 1000000, running: 1000000, storage_bytes: null } },
  'POST /v1/tokens': { rule: 'admin', body: { name: 'pwned', org: 'admin', admin: true } },
  'GET /v1/tokens': { rule: 'admin' },
  'DELETE /v1/tokens/{}': { rule: 'admin', path: '/v1/tokens/keeper' },
  'POST /v1/images': { rule: 'admin', body: { name: 'pwned', from: 'busybox' } },
  'GET /v1/images': { rule: 'token' },
  'GET /v1/images/{}': { rule: 'token', path: '/v1/images/pwned' },
  'DELETE /v1/images/{}': { rule: 'admin', path: '/v1/images/pwned' },
  'GET /v1/sprites/{}/fs/read': { rule: 'org', path: `${S}/fs/read?path=/authz/keep` },
  'PUT /v1/sprites/{}/fs/write': { rule: 'org', path: `${S}/fs/write?path=/authz/keep`, body: 'pwned' },
  'GET /v1/sprites/{}/fs/list': { rule: 'org', path: `${S}/fs/list?path=/authz` },
  'DELETE /v1/sprites/{}/fs/delete': { rule: 'org', path: `${S}/fs/delete?path=/authz/keep` },
  'POST /v1/sprites/{}/fs/rename': { rule: 'org', body: { source: '/authz/keep', dest: '/authz/pwned' } },
  'POST /v1/sprites/{}/fs/copy': { rule: 'org', body: { source: '/authz/keep', dest: '/authz/pwned' } },
  'POST /v1/sprites/{}/fs/chmod': { rule: 'org', body: { path: '/authz/keep', mode: '0777' } },
  'POST /v1/sprites/{}/fs/chown': { rule: 'org', body: { path: '/authz/keep', uid: 1234 } },
  'GET /v1/sprites/{}/exec (WebSocket)': { rule: 'org', path: `${S}/exec?cmd=touch&cmd=/authz/pwned` },
  'GET /v1/sprites/{}/exec/{} (WebSocket)': { rule: 'org', path: `${S}/exec/1` },
  'GET /v1/sprites/{}/ports/watch (WebSocket)': { rule: 'org' },
  'GET /v1/sprites/{}/control (WebSocket)': { rule: 'org' },
  'GET /v1/sprites/{}/proxy (WebSocket)': { rule: 'org' },
  'GET /v1/sprites/{}/fs/watch (WebSocket)': { rule: 'org' },
};

/** The call a row makes against `sprite`: method, path and whether it is a WebSocket. */
export function callOf(key: string, row: Row, sprite: string): { method: string; path: string; ws: boolean } {
  const [method = '', keyPath = ''] = key.split(' ');
  const path = (row.path ?? keyPath.replace('{}', '{sprite}')).replace('{sprite}', encodeURIComponent(sprite));
  return { method, path, ws: key.endsWith('(WebSocket)') };
}

/** An answer: status and the parsed JSON body (or the text). */
export interface Answer {
  status: number;
  body: any;
}

/** Calls `base` + path over HTTP or as a WebSocket upgrade; an upgrade that opens answers 101. */
export async function send(base: string, call: { method: string; path: string; ws: boolean }, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  if (call.ws) return upgrade(`${base.replace(/^http/, 'ws')}${call.path}`, headers);
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(`${base}${call.path}`, { method: call.method, headers: { ...headers, 'content-type': 'application/json' }, body: text });
  return { status: res.status, body: parsed(await res.text()) };
}

function upgrade(url: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: parsed(text) }));
    });
    ws.once('open', () => {
      ws.terminate();
      resolve({ status: 101, body: undefined });
    });
    ws.once('error', (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

function parsed(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

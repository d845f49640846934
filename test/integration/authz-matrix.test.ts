import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { servedRoutes } from '../helpers/routes.ts';
import { COLUMNS, ROWS, UNAUTHORIZED, callOf, send, type Tokens } from '../helpers/authz-matrix.ts';

const SPRITE = 'authz-box';
const MISSING = 'authz-none';

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** A GET with `token`: status and JSON body, or the text for other answers. */
async function get(peer: PeerProcess, path: string, token = peer.token): Promise<{ status: number; body: any }> {
  const res = await fetch(`${peer.url}${path}`, { headers: bearer(token) });
  const text = await res.text();
  return { status: res.status, body: /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text };
}

/** A JSON request with the peer's admin token that must succeed. */
async function admin(peer: PeerProcess, method: string, path: string, body?: unknown): Promise<any> {
  const answer = await peer.api(method, path, body);
  assert.ok(answer.status < 300, `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return answer.body;
}

describe('authorization matrix: every API route as every kind of caller, on the owner and through another peer', () => {
  let a: PeerProcess;
  let b: PeerProcess;
  let owner: PeerProcess;
  let other: PeerProcess;
  const tokens: Tokens = { org: '', otherOrg: '', revoked: '' };

  /** What a refused call could have changed: sprites, tokens, orgs, images, drain, the sprite's policies, files, services, checkpoints, sessions. */
  const snapshot = async (): Promise<unknown> => {
    const path = `/v1/sprites/${SPRITE}`;
    // Sleeping is not a change a call made; a stop, a failure or a restart (a new machine id) is.
    const awake = (status: string): string => (['running', 'warm', 'cold'].includes(status) ? 'up' : status);
    const sprites = (await admin(a, 'GET', '/v1/sprites')).sprites.map((s: Record<string, any>) => ({
      name: s.name, org: s.organization, id: s.id, owner: s.owner, epoch: s.epoch, labels: s.labels, url: s.url_settings, config: s.config, status: awake(s.status),
    }));
    return {
      sprites,
      tokens: (await admin(a, 'GET', '/v1/tokens')).tokens.map((t: Record<string, unknown>) => [t.name, t.org, t.admin, t.revoked]),
      orgs: (await admin(b, 'GET', '/v1/orgs')).orgs.map((o: Record<string, unknown>) => o.name),
      // The limits only: use changes by itself (a sprite sleeping cold stops counting as running).
      quotas: Object.entries((await admin(b, 'GET', '/v1/orgs/acme')).quotas).map(([kind, q]) => [kind, (q as { limit: unknown }).limit]),
      images: (await admin(a, 'GET', '/v1/images')).images.map((i: Record<string, unknown>) => i.name),
      drain: (await admin(b, 'GET', '/v1/peers')).peers.map((p: Record<string, unknown>) => [p.id, p.drain]),
      policies: await Promise.all(['network', 'privileges', 'resources'].map((kind) => get(owner, `${path}/policy/${kind}`))),
      files: (await get(owner, `${path}/fs/list?path=/authz`)).body.entries.map((e: Record<string, unknown>) => [e.name, e.size, e.mode]),
      keep: (await get(owner, `${path}/fs/read?path=/authz/keep`)).body,
      services: (await get(owner, `${path}/services`)).body,
      checkpoints: await get(owner, `${path}/checkpoints`),
      sessions: (await get(owner, `${path}/exec`)).body.sessions.map((s: Record<string, unknown>) => s.id),
    };
  };

  before(async () => {
    a = await startPeer({ poolDepth: 1 });
    b = await startPeer({ poolDepth: 0, join: a });
    for (const org of ['acme', 'globex']) await admin(a, 'POST', '/v1/orgs', { name: org });
    tokens.org = (await admin(a, 'POST', '/v1/tokens', { name: 'keeper', org: 'acme' })).token;
    tokens.otherOrg = (await admin(b, 'POST', '/v1/tokens', { name: 'globex-dev', org: 'globex' })).token;
    tokens.revoked = (await admin(a, 'POST', '/v1/tokens', { name: 'gone', org: 'acme' })).token;
    await admin(a, 'DELETE', '/v1/tokens/gone');
    for (const peer of [a, b]) {
      await eventually(async () => (await get(peer, '/v1/sprites', tokens.org)).status === 200 && (await get(peer, '/v1/sprites', tokens.otherOrg)).status === 200, 20_000, 'the tokens on every peer');
      await eventually(async () => (await get(peer, '/v1/sprites', tokens.revoked)).status === 401, 20_000, 'the revocation on every peer');
    }
    const res = await fetch(`${a.url}/v1/sprites`, { method: 'POST', headers: { ...bearer(tokens.org), 'content-type': 'application/json' }, body: JSON.stringify({ name: SPRITE }) });
    const created = await res.json() as { owner: string };
    assert.equal(res.status, 201, JSON.stringify(created));
    const ids = await Promise.all([a, b].map(async (peer) => (await (await fetch(`${peer.url}/v1/health`)).json() as { peer: string }).peer));
    [owner, other] = ids[0] === created.owner ? [a, b] : [b, a];
    await eventually(async () => (await get(other, `/v1/sprites/${SPRITE}`)).status === 200, 20_000, 'the sprite on the other peer');
    const wrote = await fetch(`${owner.url}/v1/sprites/${SPRITE}/fs/write?path=/authz/keep&mkdirParents=true`, { method: 'PUT', headers: bearer(owner.token), body: 'kept' });
    assert.equal(wrote.status, 200, await wrote.text());
  });
  after(async () => {
    for (const peer of [b, a]) {
      await peer?.stop();
      if (peer) await removeDataDir(peer.dataDir);
    }
  });

  test('every route of the table has a row, and declares the rule its row says', () => {
    const served = servedRoutes();
    assert.deepEqual([...served.keys()].filter((key) => !(key in ROWS)).sort(), [], 'routes without a row in the matrix');
    assert.deepEqual(Object.keys(ROWS).filter((key) => !served.has(key)).sort(), [], 'rows of no route');
    for (const [key, rule] of served) assert.equal(rule, ROWS[key]!.rule, `${key} declares ${rule}`);
  });

  test('every caller the rule refuses gets the documented refusal, on the owner and through another peer, and nothing changes', async () => {
    const before = await snapshot();
    const wrong: string[] = [];
    let calls = 0;
    for (const [where, peer] of [['owner', owner], ['other peer', other]] as const) {
      for (const [key, row] of Object.entries(ROWS)) {
        const call = callOf(key, row, SPRITE);
        for (const column of COLUMNS) {
          const expected = column.expect(row.rule);
          if (!expected) continue;
          calls += 1;
          const answer = await send(peer.url, call, column.headers(tokens), row.body);
          if (answer.status !== expected.status || answer.body?.error !== expected.error) {
            wrong.push(`${key} on the ${where} as ${column.name}: ${answer.status} ${JSON.stringify(answer.body)} (expected ${expected.status} ${expected.error})`);
          }
        }
      }
    }
    assert.deepEqual(wrong, []);
    assert.ok(calls > 500, `${calls} calls`);
    assert.deepEqual(await snapshot(), before);
  });

  test("another org's sprite answers exactly as a missing one, on every route that names a sprite", async () => {
    const differ: string[] = [];
    for (const peer of [owner, other]) {
      for (const [key, row] of Object.entries(ROWS)) {
        if (row.rule !== 'org') continue;
        const theirs = await send(peer.url, callOf(key, row, SPRITE), bearer(tokens.otherOrg), row.body);
        const missing = await send(peer.url, callOf(key, row, MISSING), bearer(tokens.otherOrg), row.body);
        const shown = JSON.stringify(theirs).replaceAll(SPRITE, MISSING);
        if (shown !== JSON.stringify(missing)) differ.push(`${key}: ${shown} vs ${JSON.stringify(missing)}`);
      }
    }
    assert.deepEqual(differ, []);
  });

  test("token routes show another org's caller only its own org", async () => {
    for (const peer of [owner, other]) {
      const listed = await get(peer, '/v1/sprites', tokens.otherOrg);
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body.sprites, []);
      assert.equal(listed.body.name, 'globex');
      // The live listing: its first lines are the sprites the caller sees, then a heartbeat.
      const stream = await fetch(`${peer.url}/v1/sprites`, { headers: { ...bearer(tokens.otherOrg), accept: 'application/x-ndjson' } });
      let text = '';
      for await (const chunk of stream.body!) {
        text += Buffer.from(chunk).toString();
        if (text.includes('"heartbeat"')) break;
      }
      const lines = text.trim().split('\n').map((line) => JSON.parse(line) as { type?: string; name?: string });
      assert.deepEqual(lines.map((line) => line.type ?? line.name), ['heartbeat']);
    }
  });

  test('a malformed escape in a sprite name answers 400, not 500', async () => {
    for (const peer of [owner, other]) {
      const answer = await get(peer, '/v1/sprites/%zz/exec', tokens.org);
      assert.deepEqual([answer.status, answer.body.error], [400, 'ERR_BAD_REQUEST']);
    }
  });

  test('revoking a token closes the WebSockets, sessions and streams it opened; the token cannot reattach', async () => {
    const live = (await admin(owner, 'POST', '/v1/tokens', { name: 'live', org: 'acme' })).token as string;
    await eventually(async () => (await get(other, '/v1/sprites', live)).status === 200, 20_000, 'the token on the other peer');
    const wsBase = (peer: PeerProcess): string => `${peer.url.replace(/^http/, 'ws')}/v1/sprites/${SPRITE}`;
    const closes = new Map<string, number>();
    const opened = (name: string, ws: WebSocket): Promise<void> => {
      ws.once('close', (code) => closes.set(name, code));
      ws.on('error', () => undefined);
      return new Promise((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('unexpected-response', () => reject(new Error(`${name} was refused`)));
      });
    };
    // A detachable terminal session on the owner; a plain exec and an fs watch through the other peer.
    const tty = new WebSocket(`${wsBase(owner)}/exec?cmd=sh&tty=true&detachable=true`, { headers: bearer(live) });
    const sessionId = new Promise<string>((resolve) => tty.on('message', (data, binary) => {
      const message = binary ? undefined : JSON.parse(data.toString()) as { type?: string; session_id?: unknown };
      if (message?.type === 'session_info') resolve(String(message.session_id));
    }));
    const exec = new WebSocket(`${wsBase(other)}/exec?cmd=sleep&cmd=600`, { headers: bearer(live) });
    const watch = new WebSocket(`${wsBase(other)}/fs/watch`, { headers: bearer(live) });
    await Promise.all([opened('tty', tty), opened('exec', exec), opened('watch', watch)]);
    const id = await sessionId;
    // A long HTTP stream: the live sprite list, through the other peer.
    const stream = await fetch(`${other.url}/v1/sprites`, { headers: { ...bearer(live), accept: 'application/x-ndjson' } });
    assert.equal(stream.status, 200);
    let streamEnded = false;
    void (async () => {
      try {
        for await (const _ of stream.body!) { /* the stream's lines */ }
      } catch { /* cut */ }
      streamEnded = true;
    })();

    await admin(other, 'DELETE', '/v1/tokens/live');
    await eventually(() => closes.size === 3 && streamEnded, 30_000, 'everything the token opened to close');
    // The owner served the terminal itself: it says why.
    assert.equal(closes.get('tty'), 1008);
    // The detachable session's process keeps running, as when its client hangs up; the revoked token cannot reach it.
    const sessions = (await get(owner, `/v1/sprites/${SPRITE}/exec`)).body.sessions as { id: unknown }[];
    assert.ok(sessions.some((s) => String(s.id) === id), `session ${id} in ${JSON.stringify(sessions)}`);
    for (const peer of [owner, other]) {
      const again = await send(peer.url, { method: 'GET', path: `/v1/sprites/${SPRITE}/exec/${id}`, ws: true }, bearer(live));
      assert.deepEqual([again.status, again.body?.error], [UNAUTHORIZED.status, UNAUTHORIZED.error]);
    }
    // A valid token of the org still reaches it.
    const attach = await send(other.url, { method: 'GET', path: `/v1/sprites/${SPRITE}/exec/${id}`, ws: true }, bearer(tokens.org));
    assert.equal(attach.status, 101);
    await fetch(`${owner.url}/v1/sprites/${SPRITE}/exec/${id}/kill?signal=KILL`, { method: 'POST', headers: bearer(owner.token) }).then((res) => res.text());
  });
});

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { X509Certificate } from 'node:crypto';
import { generateLinkCa, LinkIdentity, memberCheck, parseKeyPair, signedBy } from '../../node/links/index.ts';
import type { LinkCaStore } from '../../node/records/index.ts';
import { memoryLogger } from '../../vm/logger.ts';

/** A link CA row shared by in-process identities, as the replicated store would hold it. */
function fakeStore(): LinkCaStore & { set(text: string): void } {
  let value: string | undefined;
  const listeners = new Set<(text: string | undefined) => void>();
  const set = (text: string): void => {
    value = text;
    for (const listener of listeners) listener(text);
  };
  return { get: () => value, put: set, set, onChange: (listener) => { listeners.add(listener); return () => listeners.delete(listener); } };
}

test('link identities share the mesh CA, name their peer id, and re-sign when the CA changes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sprite-links-'));
  const store = fakeStore();
  const logger = memoryLogger();
  const a = new LinkIdentity({ peerId: 'peer-a', dir: join(dir, 'a'), store, member: () => true, logger });
  const b = new LinkIdentity({ peerId: 'peer-b', dir: join(dir, 'b'), store, member: () => true, logger });
  try {
    await a.start(0);
    const ca = parseKeyPair(store.get())!;
    assert.ok(ca, 'the first peer made the CA and stored it');
    await b.start(0);
    assert.equal(parseKeyPair(store.get())!.cert, ca.cert, 'the second peer took the stored CA');
    for (const [identity, id] of [[a, 'peer-a'], [b, 'peer-b']] as const) {
      const cert = identity.server().cert as string;
      assert.equal(new X509Certificate(cert).subject.split('\n').find((line) => line.startsWith('CN='))?.slice(3), id);
      assert.ok(signedBy(cert, ca.cert));
      assert.equal(identity.server().requestCert, true);
      assert.equal(identity.server().rejectUnauthorized, true);
    }
    // The key stays the owner's: written readable by the peer alone.
    assert.equal((await stat(join(dir, 'a', 'key.pem'))).mode & 0o077, 0);
    assert.equal(await readFile(join(dir, 'a', 'ca.pem'), 'utf8'), ca.cert);
    // Another CA wins in the store (two peers made one at once): both re-sign with it.
    const next = await generateLinkCa();
    let changes = 0;
    a.onChange(() => (changes += 1));
    store.set(JSON.stringify(next));
    const deadline = Date.now() + 10_000;
    while ((a.generation === 0 || b.generation === 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(changes, 1);
    assert.ok(signedBy(a.server().cert as string, next.cert) && signedBy(b.server().cert as string, next.cert));
    assert.equal(signedBy(a.server().cert as string, ca.cert), false);
    // A malformed row (gossip) changes nothing.
    store.set('{"cert": "nope"}');
    assert.equal(a.generation, 1);
  } finally {
    a.stop();
    b.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('the member check: this peer, and members not marked down; nobody else', () => {
  const listeners: ((event: { id: string; to: string }) => void)[] = [];
  const mesh = {
    peerId: 'self',
    members: () => [{ id: 'alive-one', state: 'alive' }, { id: 'silent', state: 'suspect' }, { id: 'gone', state: 'down' }],
    onMemberChange: (listener: (event: { id: string; to: string }) => void) => { listeners.push(listener); return () => undefined; },
  };
  const { check } = memberCheck(mesh);
  assert.deepEqual(['self', 'alive-one', 'silent', 'gone', 'stranger'].map(check), [true, true, true, false, false]);
  for (const listener of listeners) listener({ id: 'alive-one', to: 'down' });
  assert.equal(check('alive-one'), false);
});

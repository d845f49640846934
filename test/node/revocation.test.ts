import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OpenByToken } from '../../node/api/revocation.ts';

/** A token table in memory: valid hashes, and the change feed OpenByToken follows. */
function tokens(valid: string[]) {
  const live = new Set(valid);
  const listeners = new Set<() => void>();
  return {
    ownerOfHash: (hash: string) => (live.has(hash) ? { org: 'acme', admin: false } : undefined),
    onChange: (listener: () => void) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    revoke(hash: string) {
      live.delete(hash);
      for (const listener of listeners) listener();
    },
    listeners,
  };
}

test('a revocation closes what that token opened, once, and nothing of other tokens', () => {
  const table = tokens(['a', 'b']);
  const open = new OpenByToken(table);
  const closed: string[] = [];
  open.hold('a', () => closed.push('a1'));
  open.hold('a', () => closed.push('a2'));
  const releaseEnded = open.hold('a', () => closed.push('ended'));
  open.hold('b', () => closed.push('b1'));
  // A connection that ended before the revocation is not closed again.
  releaseEnded();
  table.revoke('a');
  assert.deepEqual(closed.sort(), ['a1', 'a2']);
  // Another change (a second revocation of another token) closes only that token's.
  table.revoke('b');
  assert.deepEqual(closed.sort(), ['a1', 'a2', 'b1']);
  table.revoke('zz');
  assert.equal(closed.length, 3);
});

test('one failing close does not keep the others open; stop unsubscribes', () => {
  const table = tokens(['a']);
  const open = new OpenByToken(table);
  let second = false;
  open.hold('a', () => {
    throw new Error('socket already gone');
  });
  open.hold('a', () => (second = true));
  table.revoke('a');
  assert.equal(second, true);
  open.stop();
  assert.equal(table.listeners.size, 0);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Membership } from '../../gossip/membership.ts';

test('a silent member goes suspect, then down, and comes back alive on a heartbeat', () => {
  const members = new Membership({ suspectAfterMs: 100, downAfterMs: 300 });
  assert.deepEqual(members.observe('a', 0), { id: 'a', from: undefined, to: 'alive' });
  assert.deepEqual(members.tick(50), []);
  assert.deepEqual(members.tick(150), [{ id: 'a', from: 'alive', to: 'suspect' }]);
  assert.deepEqual(members.tick(200), []);
  assert.deepEqual(members.tick(300), [{ id: 'a', from: 'suspect', to: 'down' }]);
  assert.deepEqual(members.members('down'), ['a']);
  assert.deepEqual(members.observe('a', 310), { id: 'a', from: 'down', to: 'alive' });
  assert.equal(members.observe('a', 320), undefined);
});

test('an older observation never moves last-seen backwards', () => {
  const members = new Membership({ suspectAfterMs: 100, downAfterMs: 300 });
  members.observe('a', 500);
  members.observe('a', 100);
  assert.deepEqual(members.tick(590), []);
});

test('timeouts are validated', () => {
  assert.throws(() => new Membership({ suspectAfterMs: 100, downAfterMs: 50 }), /suspect < down/);
});

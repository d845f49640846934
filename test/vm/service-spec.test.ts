import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkNeeds, neededBy, parseServiceSpec, parseSignal, type ServiceSpec } from '../../vm/init/service-spec.ts';

const spec = (name: string, needs: string[] = []): ServiceSpec => ({ name, cmd: 'true', args: [], env: {}, dir: '/', needs });
const refused = (fn: () => unknown, message: RegExp): void => assert.throws(fn, (error: Error & { code?: string }) => error.code === 'ERR_BAD_REQUEST' && message.test(error.message));

test('a service spec takes http_port (the wire) and httpPort (older files); needs are deduplicated', () => {
  assert.deepEqual(parseServiceSpec({ name: 'web', cmd: 'httpd', http_port: 8080, needs: ['db', 'db'] }), { name: 'web', cmd: 'httpd', args: [], env: {}, dir: '/', needs: ['db'], httpPort: 8080 });
  assert.equal(parseServiceSpec({ name: 'web', cmd: 'httpd', httpPort: 9000 }).httpPort, 9000);
  refused(() => parseServiceSpec({ name: 'Web', cmd: 'x' }), /service name/);
  refused(() => parseServiceSpec({ name: 'web', cmd: 'x', needs: ['Bad Name'] }), /needs must be/);
  refused(() => parseServiceSpec({ name: 'web', cmd: 'x', env: { 'A=B': 'c' } }), /env names/);
  refused(() => parseServiceSpec({ name: 'web', cmd: 'x', http_port: 0 }), /http_port/);
  refused(() => parseServiceSpec([]), /must be an object/);
});

test('needs must exist and must not form a cycle', () => {
  const existing = new Map([['db', spec('db')], ['cache', spec('cache', ['db'])], ['web', spec('web', ['cache'])]]);
  checkNeeds(existing, spec('api', ['db', 'cache']));
  refused(() => checkNeeds(existing, spec('api', ['queue'])), /api needs queue, which does not exist/);
  refused(() => checkNeeds(existing, spec('api', ['api'])), /cycle: api -> api/);
  // Replacing db so that it needs web closes db -> web -> cache -> db.
  refused(() => checkNeeds(existing, spec('db', ['web'])), /cycle: db -> web -> cache -> db/);
  assert.deepEqual(neededBy(existing.values(), 'db'), ['cache']);
});

test('signals by name, with or without SIG', () => {
  assert.equal(parseSignal('TERM'), 'SIGTERM');
  assert.equal(parseSignal('sighup'), 'SIGHUP');
  assert.equal(parseSignal('KILL'), 'SIGKILL');
  for (const bad of ['', 'SIGBOGUS', 9, 'SEGV']) refused(() => parseSignal(bad), /signal must be one of/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { duration, parseExecQuery, parseKillQuery } from '../../node/api/exec-query.ts';

const url = (query: string): URL => new URL(`http://peer/v1/sprites/x/exec?${query}`);

test('the exec query as the SDK sends it', () => {
  const request = parseExecQuery(url('cmd=sh&cmd=-c&cmd=echo+hi&path=sh&stdin=true&env=A=1&env=B=x%3Dy&dir=/tmp&tty=true&rows=30&cols=100&detachable=true&max_run_after_disconnect=1m30s'), 'ws');
  assert.deepEqual(request, {
    command: ['sh', '-c', 'echo hi'], env: { A: '1', B: 'x=y' }, dir: '/tmp', tty: true, cols: 100, rows: 30,
    stdin: true, detachable: true, maxRunAfterDisconnectMs: 90_000,
  });
  const plain = parseExecQuery(url('cmd=ls'), 'http');
  assert.equal(plain.stdin, false);
  assert.equal(plain.maxRunAfterDisconnectMs, null);
  assert.deepEqual(parseExecQuery(url('cmd=x&cmd=arg&path=/bin/echo'), 'ws').command, ['/bin/echo', 'arg']);
  assert.deepEqual(parseExecQuery(url('path=/bin/true'), 'ws').command, ['/bin/true']);
});

test('bad exec queries are ERR_BAD_REQUEST', () => {
  for (const [query, transport] of [
    ['', 'ws'], ['cmd=ls&tty=true', 'http'], ['cmd=ls&tty=yes', 'ws'], ['cmd=ls&rows=0', 'ws'], ['cmd=ls&cols=1.5', 'ws'],
    ['cmd=ls&env=NOEQUALS', 'ws'], ['cmd=ls&env=1A=b', 'ws'], ['cmd=ls&dir=relative', 'ws'], ['cmd=a%00b', 'ws'],
    ['cmd=ls&max_run_after_disconnect=10', 'ws'], ['cmd=ls&cc=true', 'ws'], ['cmd=ls&max_run_after_disconnect=9999h', 'ws'],
  ] as const) {
    assert.throws(() => parseExecQuery(url(query), transport), { code: 'ERR_BAD_REQUEST' }, query);
  }
});

test('durations and kill queries', () => {
  assert.equal(duration('0', 't'), 0);
  assert.equal(duration('250ms', 't'), 250);
  assert.equal(duration('1h2m3.5s', 't'), 3_723_500);
  assert.equal(duration('10us', 't'), 1);
  assert.deepEqual(parseKillQuery(url('')), { signal: 'TERM', timeoutMs: 10_000 });
  assert.deepEqual(parseKillQuery(url('signal=SIGKILL&timeout=2s')), { signal: 'KILL', timeoutMs: 2000 });
  assert.throws(() => parseKillQuery(url('signal=SIGBOGUS')), { code: 'ERR_BAD_REQUEST' });
  assert.throws(() => parseKillQuery(url('timeout=2h')), { code: 'ERR_BAD_REQUEST' });
});

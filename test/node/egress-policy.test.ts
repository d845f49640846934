import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Admissions } from '../../node/egress/admissions.ts';
import { admission, cacheSeconds } from '../../node/egress/answer-meaning.ts';
import { buildQuery, buildReply, RCODE, RcodeError, readAnswer, readName, readQuery, TYPE, WireError } from '../../node/egress/dns-wire.ts';
import { compilePolicy, DEFAULT_DESTINATIONS, defaultPolicy, expandRules, matches } from '../../node/egress/policy-match.ts';
import { checkDomain, parseNetworkPolicy, type NetworkPolicy } from '../../node/policies.ts';
import { answerFrom } from '../helpers/dns-server.ts';

const rule = (domain: string, action: 'allow' | 'deny') => ({ domain, action }) as const;
const decide = (policy: NetworkPolicy, name: string): string => compilePolicy(policy).decide(name);

test('patterns: exact names, *.wildcards for subdomains only, * for all', () => {
  assert.ok(matches('example.com', 'example.com'));
  assert.ok(!matches('example.com', 'www.example.com'));
  assert.ok(matches('*.example.com', 'www.example.com'));
  assert.ok(matches('*.example.com', 'a.b.example.com'));
  assert.ok(!matches('*.example.com', 'example.com'));
  assert.ok(!matches('*.example.com', 'badexample.com'));
  assert.ok(matches('*', 'anything.at.all'));
});

test('decisions: first match wins, case and the trailing dot do not matter, unmatched names are allowed', () => {
  const policy: NetworkPolicy = { rules: [rule('ads.example.com', 'deny'), rule('*.example.com', 'allow'), rule('*', 'deny')] };
  assert.equal(decide(policy, 'ADS.Example.COM.'), 'deny');
  assert.equal(decide(policy, 'www.example.com'), 'allow');
  assert.equal(decide(policy, 'example.com'), 'deny');
  assert.equal(decide(policy, 'other.org'), 'deny');
  const reversed: NetworkPolicy = { rules: [rule('*.example.com', 'allow'), rule('ads.example.com', 'deny')] };
  assert.equal(decide(reversed, 'ads.example.com'), 'allow');
  assert.equal(decide({ rules: [rule('bad.com', 'deny')] }, 'good.com'), 'allow');
  assert.equal(decide({ rules: [] }, 'good.com'), 'allow');
});

test('restrictive: only when a * deny is reached before any * allow', () => {
  assert.equal(compilePolicy({ rules: [] }).restrictive, false);
  assert.equal(compilePolicy({ rules: [rule('bad.com', 'deny')] }).restrictive, false);
  assert.equal(compilePolicy({ rules: [rule('a.com', 'allow'), rule('*', 'deny')] }).restrictive, true);
  assert.equal(compilePolicy({ rules: [rule('*', 'allow'), rule('*', 'deny')] }).restrictive, false);
});

test('the defaults preset expands in place, is valid under the API checks, and the peer defaults mean what they say', () => {
  for (const domain of DEFAULT_DESTINATIONS) assert.equal(checkDomain(domain, 'preset'), domain);
  const policy: NetworkPolicy = { rules: [rule('github.com', 'deny'), { include: 'defaults' }, rule('*', 'deny')] };
  assert.equal(expandRules(policy).length, DEFAULT_DESTINATIONS.length + 2);
  assert.equal(decide(policy, 'github.com'), 'deny');
  assert.equal(decide(policy, 'objects.githubusercontent.com'), 'allow');
  assert.equal(decide(policy, 'files.pythonhosted.org'), 'allow');
  assert.equal(decide(policy, 'evil.example'), 'deny');
  for (const kind of ['allow-all', 'defaults', 'deny-all'] as const) assert.deepEqual(parseNetworkPolicy(defaultPolicy(kind)), defaultPolicy(kind));
  assert.equal(decide(defaultPolicy('allow-all'), 'x.org'), 'allow');
  assert.equal(decide(defaultPolicy('deny-all'), 'deb.debian.org'), 'deny');
  assert.equal(decide(defaultPolicy('defaults'), 'deb.debian.org'), 'allow');
  assert.equal(compilePolicy(defaultPolicy('defaults')).restrictive, true);
});

test('wire: a query reads back, names are lowercased and odd bytes escaped', () => {
  const query = readQuery(buildQuery('WWW.Example.com', TYPE.A, 7, { edns: 1232 }));
  assert.deepEqual(query.question, { name: 'www.example.com', type: TYPE.A, class: 1 });
  assert.equal(query.edns, true);
  assert.equal(query.udpSize, 1232);
  const dotted = Buffer.from(buildQuery('x.com', TYPE.A, 1));
  dotted[13] = 0x2e; // the label "x" becomes "."
  assert.equal(readQuery(dotted).question.name, '\\046.com');
  assert.equal(buildReply(buildQuery('a.b', TYPE.A, 9), 17, RCODE.REFUSED)[3]! & 0xf, RCODE.REFUSED);
});

test('wire: truncation, compression loops, forward pointers and huge counts are errors, not crashes', () => {
  const good = buildQuery('example.com', TYPE.A, 1);
  for (let cut = 0; cut < good.length; cut++) assert.throws(() => readQuery(good.subarray(0, cut)), WireError);
  const loop = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  assert.throws(() => readQuery(loop), /backwards/);
  assert.throws(() => readName(Buffer.from([1, 0x61, 0xc0, 0]), 0), /backwards/);
  const long = Buffer.concat([...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])), Buffer.from([0])]);
  assert.throws(() => readName(long, 0), /255/);
  const counts = Buffer.from(good);
  counts.writeUInt16BE(0xffff, 6);
  assert.throws(() => readQuery(counts), RcodeError);
  const answer = answerFrom({ records: { 'example.com': [{ a: '192.0.2.1' }] } }, good, true)!;
  const huge = Buffer.from(answer);
  huge.writeUInt16BE(0xffff, 6);
  assert.throws(() => readAnswer(huge), /truncated/);
  assert.throws(() => readAnswer(Buffer.concat([answer, Buffer.from([0])])), /trailing/);
});

test('admission: follows the CNAME chain from the queried name, ignores other owners, takes the least TTL (clamped)', () => {
  const zone = {
    records: {
      'www.app.com': [{ cname: 'edge.cdn.net', ttl: 600 }],
      'edge.cdn.net': [{ a: '192.0.2.10', ttl: 60 }, { a: '192.0.2.11', ttl: 120 }],
      'zero.com': [{ a: '192.0.2.12', ttl: 0 }],
      'six.com': [{ aaaa: '2001:db8::1', ttl: 30 }],
    },
  };
  const ask = (name: string, type: number = TYPE.A) => readAnswer(answerFrom(zone, buildQuery(name, type, 1), false)!);
  assert.deepEqual(admission(ask('www.app.com'), 'www.app.com'), { addresses: ['192.0.2.10', '192.0.2.11'], ttl: 60 });
  assert.deepEqual(admission(ask('www.app.com'), 'other.com'), { addresses: [], ttl: 0 });
  assert.deepEqual(admission(ask('zero.com'), 'zero.com'), { addresses: ['192.0.2.12'], ttl: 5 });
  assert.deepEqual(admission(ask('six.com', TYPE.AAAA), 'six.com'), { addresses: ['2001:db8::1'], ttl: 30 });
  assert.equal(cacheSeconds(ask('www.app.com')), 60);
  assert.equal(cacheSeconds(ask('zero.com')), 0);
  assert.equal(cacheSeconds(ask('nowhere.com')), 0);
});

test('a policy change withdraws the addresses only names now denied gave, with the time they had left', () => {
  const admissions = new Admissions();
  const t0 = 1_000_000;
  assert.deepEqual(admissions.record('Api.Example.com.', ['192.0.2.1', '192.0.2.2'], 60, t0), ['192.0.2.1', '192.0.2.2']);
  // Already admitted for longer than half this TTL: nothing for the firewall to do.
  assert.deepEqual(admissions.record('cdn.example.net', ['192.0.2.2'], 30, t0), []);
  assert.deepEqual(admissions.record('old.example.org', ['192.0.2.9'], 5, t0), ['192.0.2.9']);
  assert.deepEqual(admissions.live(t0 + 1000), [{ address: '192.0.2.1', seconds: 59 }, { address: '192.0.2.2', seconds: 59 }, { address: '192.0.2.9', seconds: 4 }]);
  const stillAllowed = compilePolicy({ rules: [rule('cdn.example.net', 'allow'), rule('*', 'deny')] });
  // 192.0.2.2 is still vouched for by cdn.example.net; 192.0.2.9's admission has run out by then.
  const withdrawn = admissions.withdraw((name) => stillAllowed.decide(name) === 'allow', t0 + 10_000);
  assert.deepEqual(withdrawn, [{ address: '192.0.2.1', seconds: 50 }]);
  // Once cdn.example.net is denied too, its address goes, and nothing is withdrawn twice.
  assert.deepEqual(admissions.withdraw(() => false, t0 + 20_000), [{ address: '192.0.2.2', seconds: 10 }]);
  assert.deepEqual(admissions.withdraw(() => false, t0 + 20_000), []);
  // Close to running out, the same answer renews the admission.
  const renewing = new Admissions();
  renewing.record('api.example.com', ['192.0.2.1'], 60, t0);
  assert.deepEqual(renewing.record('api.example.com', ['192.0.2.1'], 60, t0 + 10_000), []);
  assert.deepEqual(renewing.record('api.example.com', ['192.0.2.1'], 60, t0 + 45_000), ['192.0.2.1']);
});

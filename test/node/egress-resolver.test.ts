import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, test } from 'node:test';
import { buildQuery, RCODE, readAnswer, readHeader, TYPE } from '../../node/egress/dns-wire.ts';
import { PolicyResolver } from '../../node/egress/resolver.ts';
import type { NetworkPolicy } from '../../node/policies.ts';
import { askTcp, DnsClient, startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';

// Sprites are told apart by source address: each is a loopback address a client socket binds.
const A = '127.0.0.2';
const B = '127.0.0.3';
const STRANGER = '127.0.0.4';

const policies = new Map<string, NetworkPolicy>([
  [A, { rules: [{ domain: 'ads.example.com', action: 'deny' }, { domain: '*.example.com', action: 'allow' }, { domain: 'allowed.com', action: 'allow' }, { domain: 'www.app.com', action: 'allow' }, { domain: 'big.com', action: 'allow' }, { domain: 'silent.com', action: 'allow' }, { domain: 'failing.com', action: 'allow' }, { domain: '*', action: 'deny' }] }],
  [B, { rules: [{ include: 'defaults' }, { domain: '*', action: 'deny' }] }],
]);
const admitted: { source: string; name: string; addresses: string[]; ttl: number }[] = [];
let upstream: TestDnsServer;
let resolver: PolicyResolver;
const clients = new Map<string, DnsClient>();
let nextId = 1;

before(async () => {
  upstream = await startDnsServer({
    records: {
      'allowed.com': [{ a: '192.0.2.1', ttl: 120 }],
      'denied.com': [{ a: '192.0.2.2' }],
      'www.example.com': [{ a: '192.0.2.3', ttl: 30 }],
      'ads.example.com': [{ a: '192.0.2.4' }],
      'example.com': [{ a: '192.0.2.5' }],
      'www.app.com': [{ cname: 'edge.cdn.net', ttl: 600 }],
      'edge.cdn.net': [{ a: '198.51.100.7', ttl: 45 }],
      'github.com': [{ a: '192.0.2.6' }],
      'failing.com': [{ a: '192.0.2.8' }],
      'big.com': Array.from({ length: 40 }, (_, i) => ({ a: `203.0.113.${i + 1}` })),
    },
    truncate: ['big.com'],
    silent: ['silent.com'],
  });
  resolver = await PolicyResolver.start({
    listen: { address: '127.0.0.1', port: 0 },
    upstream: { address: upstream.address, port: upstream.port, timeoutMs: 150, attempts: 2 },
    policyFor: (source) => policies.get(source),
    onAllowed: (source, name, addresses, ttl) => {
      if (addresses.includes('192.0.2.8')) throw new Error('the firewall said no');
      admitted.push({ source, name, addresses, ttl });
    },
  });
  for (const from of [A, B, STRANGER]) clients.set(from, await DnsClient.open(from));
});

after(async () => {
  for (const client of clients.values()) client.close();
  await resolver?.close();
  await upstream?.close();
});

/** Asks the resolver from `from`; the reply read, or undefined when none came. */
async function ask(from: string, name: string, type: number = TYPE.A, edns?: number) {
  const id = nextId++;
  const reply = await clients.get(from)!.ask(resolver.address, buildQuery(name, type, id, edns ? { edns } : {}));
  if (!reply) return undefined;
  assert.equal(reply.readUInt16BE(0), id);
  return { header: readHeader(reply), reply };
}

const addressesOf = (reply: Buffer): string[] => readAnswer(reply).answers.flatMap((r) => (r.address ? [r.address] : []));

test('an allowed name is forwarded and its addresses admitted with their TTL before the answer', async () => {
  const got = await ask(A, 'allowed.com');
  assert.equal(got?.header.rcode, RCODE.NOERROR);
  assert.deepEqual(addressesOf(got!.reply), ['192.0.2.1']);
  assert.deepEqual(admitted.at(-1), { source: A, name: 'allowed.com', addresses: ['192.0.2.1'], ttl: 120 });
});

test('denied names, names outside the allow list, and strangers get REFUSED without asking upstream', async () => {
  assert.equal((await ask(A, 'denied.com'))?.header.rcode, RCODE.REFUSED);
  assert.equal((await ask(STRANGER, 'allowed.com'))?.header.rcode, RCODE.REFUSED);
  assert.equal(upstream.queries.get('denied.com'), undefined);
});

test('wildcards match subdomains only, and the first matching rule wins', async () => {
  assert.deepEqual(addressesOf((await ask(A, 'WWW.Example.COM'))!.reply), ['192.0.2.3']);
  assert.equal((await ask(A, 'ads.example.com'))?.header.rcode, RCODE.REFUSED);
  assert.equal((await ask(A, 'example.com'))?.header.rcode, RCODE.REFUSED);
});

test('include defaults allows the preset for its sprite only', async () => {
  assert.deepEqual(addressesOf((await ask(B, 'github.com'))!.reply), ['192.0.2.6']);
  assert.equal((await ask(A, 'github.com'))?.header.rcode, RCODE.REFUSED);
  assert.equal((await ask(B, 'allowed.com'))?.header.rcode, RCODE.REFUSED);
});

test('a CNAME chain admits the final addresses for the queried name, with the least TTL', async () => {
  const got = await ask(A, 'www.app.com');
  assert.deepEqual(addressesOf(got!.reply), ['198.51.100.7']);
  assert.deepEqual(admitted.at(-1), { source: A, name: 'www.app.com', addresses: ['198.51.100.7'], ttl: 45 });
});

test('a cached answer is served without the upstream, with the new id, and admitted again', async () => {
  const before = upstream.queries.get('allowed.com');
  const count = admitted.length;
  const got = await ask(A, 'allowed.com');
  assert.deepEqual(addressesOf(got!.reply), ['192.0.2.1']);
  assert.equal(upstream.queries.get('allowed.com'), before);
  assert.equal(admitted.length, count + 1);
  assert.ok(resolver.cached > 0);
});

test('a policy change applies to the next query, cached or not', async () => {
  const saved = policies.get(A)!;
  policies.set(A, { rules: [{ domain: 'allowed.com', action: 'deny' }] });
  try {
    assert.equal((await ask(A, 'allowed.com'))?.header.rcode, RCODE.REFUSED);
  } finally {
    policies.set(A, saved);
  }
});

test('an answer too big for UDP comes back truncated, then whole over TCP', async () => {
  const udp = await ask(A, 'big.com');
  assert.equal(udp?.header.tc, true);
  assert.equal(udp?.header.ancount, 0);
  const tcp = await askTcp(resolver.address, buildQuery('big.com', TYPE.A, 4242), A);
  assert.equal(tcp?.readUInt16BE(0), 4242);
  assert.equal(addressesOf(tcp!).length, 40);
  assert.equal(readHeader((await askTcp(resolver.address, buildQuery('big.com', TYPE.A, 1), STRANGER))!).rcode, RCODE.REFUSED);
});

test('an upstream that does not answer gives SERVFAIL; so does an admission that fails', async () => {
  assert.equal((await ask(A, 'silent.com'))?.header.rcode, RCODE.SERVFAIL);
  assert.equal(upstream.queries.get('silent.com'), 2);
  assert.equal((await ask(A, 'failing.com'))?.header.rcode, RCODE.SERVFAIL);
});

test('malformed queries get FORMERR or nothing, and the resolver keeps serving', async () => {
  const client = clients.get(A)!;
  const good = buildQuery('allowed.com', TYPE.A, 77);
  assert.equal(await client.ask(resolver.address, good.subarray(0, 8), 200), undefined);
  const loop = Buffer.concat([good.subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  assert.equal(readHeader((await client.ask(resolver.address, loop))!).rcode, RCODE.FORMERR);
  const huge = Buffer.from(good);
  huge.writeUInt16BE(0xffff, 4);
  assert.equal(readHeader((await client.ask(resolver.address, huge))!).rcode, RCODE.FORMERR);
  const cut = good.subarray(0, good.length - 3);
  assert.equal(readHeader((await client.ask(resolver.address, cut))!).rcode, RCODE.FORMERR);
  const response = Buffer.from(good);
  response[2] = response[2]! | 0x80;
  assert.equal(await client.ask(resolver.address, response, 200), undefined);
  const notify = Buffer.from(good);
  notify[2] = (4 << 3) | (notify[2]! & 0x87);
  assert.equal(readHeader((await client.ask(resolver.address, notify))!).rcode, RCODE.NOTIMP);
  assert.equal((await ask(A, 'allowed.com'))?.header.rcode, RCODE.NOERROR);
});

test('queries past the in-flight bound of a source are dropped, and closing with queries under way is clean', async () => {
  const bounded = await PolicyResolver.start({
    listen: { address: '127.0.0.1', port: 0 },
    upstream: { address: upstream.address, port: upstream.port, timeoutMs: 150, attempts: 1 },
    policyFor: () => ({ rules: [] }),
    onAllowed: () => {},
    limits: { inFlightPerSource: 1 },
  });
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    const ids: number[] = [];
    socket.on('message', (reply) => ids.push(reply.readUInt16BE(0)));
    socket.send(buildQuery('silent.com', TYPE.A, 1), bounded.address.port, '127.0.0.1');
    socket.send(buildQuery('silent.com', TYPE.A, 2), bounded.address.port, '127.0.0.1');
    // The first gets SERVFAIL once the upstream timed out; the second was dropped on arrival.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.deepEqual(ids, [1]);
    socket.send(buildQuery('silent.com', TYPE.A, 3), bounded.address.port, '127.0.0.1');
    await new Promise((resolve) => setTimeout(resolve, 20));
  } finally {
    await bounded.close();
    socket.close();
  }
});

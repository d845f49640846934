// Egress through a real peer: sprites reach the test internet (test/helpers/internet.ts) by IP,
// and nothing else; destroy and a killed peer leave no veth, route or rule behind; `--egress off`
// leaves loopback only. The probe (test/helpers/probe.ts) runs inside on the Node of /.sprite/bin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { startInternet, insideInternet, type Internet } from '../helpers/internet.ts';
import { egressState, eventually, leftovers, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { PROBE, probeInSprite } from '../helpers/probe.ts';

let internet: Internet;
let peer: PeerProcess;
const cleanup: (() => Promise<void>)[] = [];

/** Runs the probe inside sprite `name`. */
async function probe(name: string, ...args: string[]): Promise<{ code: number; output: string }> {
  const result = await peer.cli(['exec', name, '--', ...probeInSprite(...args)]);
  return { code: result.code, output: result.stdout + result.stderr };
}

/** The IPv4 address of a sprite's eth0. */
async function addressOf(name: string): Promise<string> {
  const shown = await peer.cli(['exec', name, '--', 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
  const match = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(shown.stdout);
  assert.ok(match, shown.stdout + shown.stderr);
  return match[1]!;
}

before(async () => {
  internet = await startInternet();
  cleanup.push(() => internet.close());
  peer = await startPeer({ poolDepth: 1, args: ['--egress-uplink', internet.uplink, '--egress-dns', internet.dnsAddress] });
  cleanup.push(async () => {
    await peer.stop();
    await removeDataDir(peer.dataDir);
  });
  for (const name of ['net-a', 'net-b']) assert.equal((await peer.api('POST', '/v1/sprites', { name })).status, 201);
});

after(async () => {
  for (const step of cleanup.reverse()) await step().catch(() => undefined);
});

test('a sprite fetches from the internet by IP, masqueraded, with its gateway as nameserver', async () => {
  const fetched = await probe('net-a', 'get', `http://${internet.httpAddress}/`);
  assert.equal(fetched.code, 0, fetched.output);
  assert.equal(fetched.output, `hello from the internet, ${internet.hostAddress}\n`);
  const address = await addressOf('net-a');
  const resolv = await peer.cli(['exec', 'net-a', '--', 'cat', '/etc/resolv.conf']);
  const route = await peer.cli(['exec', 'net-a', '--', 'ip', 'route']);
  const gateway = /default via (\S+)/.exec(route.stdout)?.[1];
  assert.ok(gateway && address.startsWith('100.'), route.stdout);
  assert.equal(resolv.stdout, `nameserver ${gateway}\n`);
  assert.doesNotMatch((await peer.cli(['exec', 'net-a', '--', 'ip', '-6', 'addr'])).stdout, /inet6/);
});

test("the peer's ports, the gateway's other ports, another sprite and 169.254.169.254 are unreachable; inbound stays closed", async () => {
  const route = await peer.cli(['exec', 'net-a', '--', 'ip', 'route']);
  const gateway = /default via (\S+)/.exec(route.stdout)![1]!;
  const ports = {
    api: new URL(peer.url).port,
    proxy: /proxy http:\/\/[^:]+:(\d+)/.exec(peer.startup.join('\n'))![1]!,
    libp2p: /\/tcp\/(\d+)\//.exec(peer.joinAddr)![1]!,
  };
  // DNS on the gateway passes the firewall (refused or answered, never "unreachable").
  assert.notEqual((await probe('net-a', 'connect', gateway, '53')).output, 'EHOSTUNREACH\n');
  for (const [what, port] of Object.entries(ports)) {
    for (const host of [gateway, internet.hostAddress]) {
      assert.equal((await probe('net-a', 'connect', host, port)).output, 'EHOSTUNREACH\n', `${what} at ${host}:${port}`);
    }
  }
  assert.equal((await probe('net-a', 'connect', gateway, '22')).output, 'EHOSTUNREACH\n');
  assert.equal((await probe('net-a', 'connect', await addressOf('net-b'), '8080')).output, 'EHOSTUNREACH\n', 'another sprite');
  assert.equal((await probe('net-a', 'connect', '169.254.169.254', '80')).output, 'EHOSTUNREACH\n', 'metadata');
  // Without the firewall the sprite would answer with a reset (refused); dropped, the attempt times out.
  const inbound = insideInternet(internet, [process.execPath, '-e', PROBE, 'connect', await addressOf('net-a'), '8080']);
  assert.equal(inbound.output, 'timeout\n');
});

/** Sets a sprite's network policy through the API (the route Sprites' SDK uses). */
async function setPolicy(name: string, rules: unknown[]): Promise<void> {
  const set = await peer.api('POST', `/v1/sprites/${name}/policy/network`, { rules });
  assert.equal(set.status, 204, JSON.stringify(set.body));
}

/** Established TCP connections the internet's HTTP server has, as `ss` in its namespace lists them. */
function heldConnections(): number {
  return insideInternet(internet, ['ss', '-Htn', 'state', 'established', '( sport = :8080 )']).output.split('\n').filter(Boolean).length;
}

test('a restrictive policy: allowed names resolve and connect, denied names get REFUSED, literal IPs of others are cut, wildcards match subdomains', async () => {
  const web = (host: string): string => `http://${host}:8080/`;
  await setPolicy('net-a', [{ domain: 'allowed.test', action: 'allow' }, { domain: '*.wild.test', action: 'allow' }, { domain: '*', action: 'deny' }]);
  assert.equal((await probe('net-a', 'resolve', 'denied.test')).output, 'EREFUSED\n');
  assert.equal((await probe('net-a', 'resolve', 'wild.test')).output, 'EREFUSED\n', '*.wild.test does not match wild.test');
  assert.equal((await probe('net-a', 'get', web(internet.otherAddress))).output, 'ECONNREFUSED\n', 'a literal IP no allowed name gave');
  const allowed = await probe('net-a', 'get', web('allowed.test'));
  assert.equal(allowed.code, 0, allowed.output);
  assert.equal((await probe('net-a', 'resolve', 'other.wild.test')).output, `${internet.otherAddress}\n`);
  assert.equal((await probe('net-a', 'get', web(internet.otherAddress))).code, 0, 'admitted once an allowed name gave it');
  // The other sprite keeps the peer's default (allow-all): any name, any address.
  assert.equal((await probe('net-b', 'resolve', 'denied.test')).output, `${internet.address}\n`);
  assert.equal((await probe('net-b', 'get', web(internet.otherAddress))).code, 0);
  const stored = await peer.api('GET', '/v1/sprites/net-a/policy/network');
  assert.equal(stored.body.rules.length, 3);
});

test('a policy change applies before its request returns and cuts a live connection to what it now denies; the policy outlives a stop and start', async () => {
  await setPolicy('net-a', [{ domain: 'allowed.test', action: 'allow' }, { domain: '*', action: 'deny' }]);
  const before = heldConnections();
  const held = probe('net-a', 'get', 'http://allowed.test:8080/hold');
  await eventually(() => (heldConnections() > before ? true : undefined), 20_000, 'the held connection is open');
  await setPolicy('net-a', [{ domain: '*', action: 'deny' }]);
  assert.equal((await probe('net-a', 'get', `http://${internet.address}:8080/`)).output, 'ECONNREFUSED\n', 'in force as soon as the request returned');
  const cut = await held;
  assert.notEqual(cut.code, 0, 'the live connection was cut');
  assert.equal((await probe('net-a', 'resolve', 'allowed.test')).output, 'EREFUSED\n');
  // A permissive policy that denies one name cuts that name's connections too (its address was only that name's).
  await eventually(() => (heldConnections() === before ? true : undefined), 20_000, 'the cut connection is gone at the server too');
  await setPolicy('net-b', [{ domain: 'otherhold.test', action: 'allow' }]);
  const held2 = probe('net-b', 'get', 'http://otherhold.test:8080/hold');
  await eventually(() => (heldConnections() > before ? true : undefined), 20_000, 'the second held connection is open');
  await setPolicy('net-b', [{ domain: 'otherhold.test', action: 'deny' }]);
  assert.notEqual((await held2).code, 0, 'cut under a permissive policy');
  assert.equal((await probe('net-b', 'get', `http://${internet.otherAddress}:8080/`)).output, 'ECONNREFUSED\n', 'its address stays cut');
  assert.equal((await probe('net-b', 'resolve', 'other.test')).output, `${internet.otherAddress}\n`, 'other names still resolve');
  assert.equal((await probe('net-b', 'get', `http://${internet.otherAddress}:8080/`)).code, 0, 'an allowed name giving the address lifts its cut');
  await setPolicy('net-b', []);
  // Stopped (a new sandbox, a new firewall on start): the stored policy is applied again.
  assert.equal((await peer.api('POST', '/v1/sprites/net-a/stop')).status, 200);
  assert.equal((await peer.api('POST', '/v1/sprites/net-a/start')).status, 200);
  assert.equal((await probe('net-a', 'resolve', 'allowed.test')).output, 'EREFUSED\n');
  assert.equal((await probe('net-a', 'get', `http://${internet.address}:8080/`)).output, 'ECONNREFUSED\n');
  await setPolicy('net-a', []);
  assert.equal((await probe('net-a', 'get', `http://${internet.address}:8080/`)).code, 0, 'no rules: open again');
});

test('each sandbox has a rate-limited veth; destroy removes the veth, its route, chain and set', async () => {
  assert.equal((await peer.api('POST', '/v1/sprites', { name: 'net-gone' })).status, 201);
  const counted = async (): Promise<string | undefined> => {
    const pool = (await peer.api('GET', '/v1/pool')).body as { ready: number; warming: number };
    const sprites = ((await peer.api('GET', '/v1/sprites')).body as { sprites: unknown[] }).sprites.length;
    const state = egressState(peer.dataDir);
    const expected = sprites + pool.ready;
    return pool.warming === 0 && [state.veths, state.routes.filter((r) => !r.includes(' dev sg')), state.chains].every((list) => list.length === expected) ? 'ok' : undefined;
  };
  await eventually(counted, 20_000, 'one veth, route and chain per sandbox');
  // The default rate limit, on the host end of every veth.
  for (const veth of egressState(peer.dataDir).veths) assert.match(execFileSync('tc', ['qdisc', 'show', 'dev', veth]).toString(), /tbf .*rate 1Gbit/);
  assert.equal((await peer.api('DELETE', '/v1/sprites/net-gone')).status, 204);
  await eventually(counted, 20_000, 'the destroyed sprite\'s veth, route and chain gone');
});

test('--egress off: loopback only, and no egress pieces on the host', async () => {
  const off = await startPeer({ poolDepth: 1, args: ['--egress', 'off'] });
  try {
    assert.equal((await off.api('POST', '/v1/sprites', { name: 'net-off' })).status, 201);
    const links = await off.cli(['exec', 'net-off', '--', 'ip', '-o', 'link']);
    assert.deepEqual(links.stdout.trim().split('\n').map((line) => line.split(': ')[1]), ['lo']);
    assert.deepEqual(egressState(off.dataDir), { veths: [], routes: [], device: [], table: [], chains: [] });
  } finally {
    await off.stop();
    await removeDataDir(off.dataDir);
  }
});

test('a peer killed with SIGKILL leaves veths and rules that its next start sweeps; a stop leaves none', async () => {
  await peer.kill();
  assert.ok((await leftovers(peer.dataDir)).some((line) => line.startsWith('egress veths')), 'a killed peer leaves its veths');
  peer = await startPeer({ dataDir: peer.dataDir, poolDepth: 1, args: ['--egress-uplink', internet.uplink, '--egress-dns', internet.dnsAddress] });
  await eventually(async () => ((await peer.api('GET', '/v1/sprites/net-a')).body.status === 'running' ? true : undefined), 20_000, 'net-a running again');
  assert.equal((await probe('net-a', 'get', `http://${internet.httpAddress}/`)).code, 0);
  await peer.stop();
  assert.deepEqual(await leftovers(peer.dataDir), []);
});

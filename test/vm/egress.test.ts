// vm/net on its own: two pinned namespaces (as sprites have) attached to a peer's egress, against
// the test internet. Commands run inside with nsenter --net: ip, and the probe (test/helpers/probe.ts) on the host's node.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pinNamespaces, releaseNamespaces, type PinnedNamespaces } from '../../vm/namespaces.ts';
import { Egress, egressNames, sweepEgress, type SpriteNetwork } from '../../vm/net/index.ts';
import { eventually } from '../helpers/peer.ts';
import { insideInternet, startInternet, type Internet } from '../helpers/internet.ts';
import { PROBE } from '../helpers/probe.ts';

const TAG = `t${(process.pid % 0xfffff).toString(16).padStart(5, '0')}`;
const names = egressNames(TAG);

let internet: Internet;
let egress: Egress;
let dir: string;
const sprites: { ns: PinnedNamespaces; net: SpriteNetwork }[] = [];
let hostListener: Server;

/** Runs a command in a sprite's network namespace; resolves with its exit code and output. */
function inside(index: number, command: string[]): { code: number; output: string } {
  try {
    const output = execFileSync('nsenter', [`--net=${sprites[index]!.ns.net}`, '--', ...command], { stdio: 'pipe', timeout: 20_000 });
    return { code: 0, output: output.toString() };
  } catch (error) {
    const failed = error as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { code: failed.status ?? 1, output: `${failed.stdout?.toString() ?? ''}${failed.stderr?.toString() ?? ''}` };
  }
}

/** The probe (test/helpers/probe.ts) in sprite `index`. */
function probe(index: number, ...args: string[]): { code: number; output: string } {
  return inside(index, [process.execPath, '-e', PROBE, ...args]);
}

/** Whether a TCP connection from sprite `index` to `host:port` opens. */
function connects(index: number, host: string, port: number): boolean {
  return probe(index, 'connect', host, String(port)).code === 0;
}

before(async () => {
  internet = await startInternet();
  dir = await mkdtemp(join(tmpdir(), 'egress-test-'));
  egress = await Egress.start(TAG, { uplink: internet.uplink, range: 'auto', allowPrivate: [], rateBitsPerSecond: 0, dns: internet.dnsAddress });
  for (const name of ['a', 'b']) {
    const ns = await pinNamespaces(join(dir, name), { hostId: 1_000_000, size: 65536 });
    sprites.push({ ns, net: await egress.attach(ns.net) });
  }
  // Something listening on every host address: what a sprite must not reach.
  hostListener = createServer((socket) => socket.end('host\n')).listen(0, '0.0.0.0');
  await new Promise((resolve) => hostListener.once('listening', resolve));
});

after(async () => {
  hostListener?.close();
  for (const { ns, net } of sprites) {
    await net.release();
    await releaseNamespaces(ns);
  }
  await egress?.stop();
  await internet?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a sprite has eth0 with its address, a default route via the gateway, no IPv6, and reaches the internet masqueraded', () => {
  const { net } = sprites[0]!;
  const config = inside(0, ['sh', '-c', 'ip -4 addr show dev eth0; ip route; ip -6 addr']);
  assert.match(config.output, new RegExp(`inet ${net.address.replaceAll('.', '\\.')}/32`));
  assert.match(config.output, new RegExp(`default via ${net.gateway.replaceAll('.', '\\.')} dev eth0`));
  assert.doesNotMatch(config.output, /inet6/);
  const fetched = probe(0, 'get', `http://${internet.httpAddress}/`);
  assert.equal(fetched.code, 0, fetched.output);
  assert.equal(fetched.output, `hello from the internet, ${internet.hostAddress}\n`);
});

test('the host, the gateway, other sprites, metadata and private ranges are unreachable; inbound stays closed', async () => {
  const port = (hostListener.address() as { port: number }).port;
  const [a, b] = [sprites[0]!.net, sprites[1]!.net];
  // Positive control: the host listener is up and DNS on the gateway passes.
  const dns = createServer((socket) => socket.end()).listen(53, a.gateway);
  await new Promise((resolve) => dns.once('listening', resolve));
  try {
    assert.ok(connects(0, a.gateway, 53), 'TCP 53 on the gateway is open to sprites');
  } finally {
    dns.close();
  }
  for (const host of [a.gateway, internet.hostAddress]) assert.equal(connects(0, host, port), false, `host listener on ${host}:${port}`);
  assert.equal(connects(0, b.address, 22), false, 'another sprite');
  assert.equal(connects(0, '169.254.169.254', 80), false, 'metadata');
  assert.equal(probe(0, 'connect', '10.1.2.3', '80').output, 'EHOSTUNREACH\n', 'a private range is refused by the firewall, not timed out');
  assert.equal(probe(0, 'connect', internet.hostAddress, String(port)).output, 'EHOSTUNREACH\n', 'the host refuses sprites at once');
  // The internet namespace routes the sprite range to the host (as a hostile neighbour could).
  const listener = spawn('nsenter', [`--net=${sprites[0]!.ns.net}`, '--', process.execPath, '-e', 'require("node:net").createServer((s) => s.end("in\\n")).listen(2222)'], { stdio: 'ignore' });
  try {
    assert.equal(probe(0, 'connect', '127.0.0.1', '2222').code === 0 || probe(0, 'connect', '127.0.0.1', '2222').code === 0, true, 'the sprite listens');
    const inbound = insideInternet(internet, [process.execPath, '-e', PROBE, 'connect', a.address, '2222']);
    assert.notEqual(inbound.code, 0, inbound.output);
  } finally {
    listener.kill('SIGKILL');
  }
});

test('a sprite cannot send from another address', () => {
  const { net } = sprites[0]!;
  // Host root can add an address here; a sprite's own root has no CAP_NET_ADMIN. The firewall passes the bound address only.
  const spoofed = inside(0, ['sh', '-c', `ip addr add 100.64.255.250/32 dev eth0 && ip route replace default via ${net.gateway} dev eth0 src 100.64.255.250`]);
  assert.equal(spoofed.code, 0, spoofed.output);
  try {
    assert.notEqual(probe(0, 'get', `http://${internet.httpAddress}/`).code, 0, 'from a spoofed address');
  } finally {
    inside(0, ['sh', '-c', `ip route replace default via ${net.gateway} dev eth0 && ip addr del 100.64.255.250/32 dev eth0`]);
  }
  assert.equal(probe(0, 'get', `http://${internet.httpAddress}/`).code, 0, 'from its own address');
});

test('restricted: only admitted addresses pass; revoke and revokeAll take them out; revokeAll cuts a live connection; revoke cuts an unrestricted sprite too', async () => {
  const firewall = sprites[0]!.net.firewall;
  const url = `http://${internet.httpAddress}/`;
  await firewall.setRestricted(true);
  try {
    assert.equal(probe(0, 'get', url).output, 'ECONNREFUSED\n', 'restricted, nothing admitted: a reset at once');
    await firewall.admit([internet.address], 60);
    assert.equal(probe(0, 'get', url).code, 0, 'admitted');
    await firewall.revoke([internet.address, '203.0.113.9'], 30);
    assert.equal(probe(0, 'get', url).output, 'ECONNREFUSED\n', 'revoked (an address never admitted is no error)');
    await firewall.admit([internet.address], 60);
    await firewall.admit([internet.address], 120);
    assert.match(execFileSync('nft', ['list', 'set', 'inet', names.table, `allow_${sprites[0]!.net.veth}`]).toString(), new RegExp(`${internet.address.replaceAll('.', '\\.')} timeout 2m`), 're-admitting renews the timeout');
    assert.equal(connects(1, internet.address, 8080), true, 'the other sprite is not restricted');
    const live = spawn('nsenter', [`--net=${sprites[0]!.ns.net}`, '--', process.execPath, '-e', PROBE, 'get', `${url}hold`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let received = 0;
    live.stdout.on('data', (chunk: Buffer) => (received += chunk.length));
    const exited = new Promise<number | null>((resolve) => live.once('exit', (code) => resolve(code)));
    try {
      await eventually(() => received >= 2, 15_000, 'the held connection streams');
      await firewall.revokeAll();
      const code = await Promise.race([exited, new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), 15_000))]);
      assert.notEqual(code, 'open', 'the live connection was cut');
      assert.notEqual(code, 0);
    } finally {
      live.kill('SIGKILL');
    }
    assert.notEqual(probe(0, 'get', url).code, 0, 'revoked');
  } finally {
    await firewall.setRestricted(false);
  }
  assert.equal(probe(0, 'get', url).code, 0, 'unrestricted again');
  await firewall.revoke([internet.address], 30);
  assert.equal(probe(0, 'get', url).output, 'ECONNREFUSED\n', 'a revoked address is cut while unrestricted too');
  await firewall.admit([internet.address], 30);
  assert.equal(probe(0, 'get', url).code, 0, 'admitting it again lifts the cut');
});

test('release removes the veth, its route, chain and set; a new start sweeps what a killed run left', async () => {
  const ns = await pinNamespaces(join(dir, 'c'), { hostId: 1_000_000, size: 65536 });
  try {
    const net = await egress.attach(ns.net);
    const listed = (): string => execFileSync('nft', ['list', 'table', 'inet', names.table]).toString();
    assert.match(listed(), new RegExp(`chain s_${net.veth}`));
    await net.release();
    assert.doesNotMatch(listed(), new RegExp(`s_${net.veth}|allow_${net.veth}`));
    assert.doesNotMatch(execFileSync('ip', ['link']).toString(), new RegExp(net.veth));
    assert.doesNotMatch(execFileSync('ip', ['-4', 'route']).toString(), new RegExp(`${net.address.replaceAll('.', '\\.')} `));
    // As if the peer had been killed: a veth and the table left; a sweep removes them all.
    const leftover = await egress.attach(ns.net);
    await sweepEgress(TAG);
    assert.doesNotMatch(execFileSync('ip', ['link']).toString(), new RegExp(`${names.vethPrefix}|${names.device}`));
    assert.throws(() => execFileSync('nft', ['list', 'table', 'inet', names.table], { stdio: 'pipe' }));
    await leftover.release();
  } finally {
    await releaseNamespaces(ns);
  }
});

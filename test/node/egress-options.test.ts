import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs } from '../../node/cli/args.ts';
import { peerStartCommand } from '../../node/cli/peer-start.ts';
import { buildConfig } from '../../node/config.ts';
import { optionsFromFlags } from '../../node/options.ts';
import { contains, formatCidr, overlaps, parseCidr } from '../../vm/net/cidr.ts';
import { firstNameserver } from '../../vm/net/host.ts';
import { slotAddress } from '../../vm/net/range.ts';

const flags = (argv: string[]) => optionsFromFlags((flag) => parseArgs(argv, peerStartCommand.spec).list(flag));

test('egress flags: on by default, rates with units, comma-separated private ranges', () => {
  const defaults = buildConfig({}).egress;
  assert.deepEqual({ ...defaults }, { on: true, uplink: undefined, range: 'auto', allowPrivate: [], rateBitsPerSecond: 1e9, dns: undefined });
  const given = buildConfig(flags([
    '--egress', 'off', '--egress-uplink', 'veth0', '--egress-range', '100.80.0.0/24', '--egress-allow-private', '10.1.0.0/16,192.168.5.0/24',
    '--egress-rate', '250mbit', '--egress-dns', '198.18.0.2',
  ])).egress;
  assert.deepEqual({ ...given, allowPrivate: [...given.allowPrivate] }, {
    on: false, uplink: 'veth0', range: '100.80.0.0/24', allowPrivate: ['10.1.0.0/16', '192.168.5.0/24'], rateBitsPerSecond: 250e6, dns: '198.18.0.2',
  });
  assert.equal(buildConfig(flags(['--egress-rate', '0'])).egress.rateBitsPerSecond, 0);
});

test('bad egress values are refused with the option named', () => {
  assert.throws(() => buildConfig({ egressAllowPrivate: ['8.8.8.0/24'] }), /allowed private ranges must be a list of CIDRs inside .*got 8\.8\.8\.0\/24/);
  assert.throws(() => buildConfig({ egressAllowPrivate: ['10.0.0.0/7'] }), /got 10\.0\.0\.0\/7/);
  assert.throws(() => buildConfig({ egressRange: '100.64.0.0/12' }), /egress range must be `auto` or an IPv4 CIDR/);
  assert.throws(() => buildConfig({ egressRange: '100.64.0.1' }), /egress range/);
  assert.throws(() => buildConfig({ egressDns: 'resolver.local' }), /egress DNS must be an IPv4 address/);
  assert.throws(() => buildConfig({ egressUplink: 'name with spaces' }), /egress uplink/);
  assert.throws(() => flags(['--egress-rate', 'fast']), /--egress-rate must be a rate like/);
  assert.throws(() => flags(['--egress', 'maybe']), /--egress must be on or off/);
});

test('CIDR arithmetic, sprite slots and resolv.conf parsing', () => {
  assert.equal(formatCidr(parseCidr('100.64.7.9/22')!), '100.64.4.0/22');
  assert.equal(parseCidr('300.1.1.1/8'), undefined);
  assert.equal(parseCidr('1.2.3.4/33'), undefined);
  assert.ok(overlaps(parseCidr('100.64.0.0/10')!, parseCidr('100.64.4.0/22')!));
  assert.ok(!overlaps(parseCidr('100.64.0.0/22')!, parseCidr('100.64.4.0/22')!));
  assert.ok(contains(parseCidr('10.0.0.0/8')!, parseCidr('10.200.1.1')!.base));
  const range = parseCidr('100.64.4.0/30')!;
  assert.deepEqual([0, 1].map((slot) => slotAddress(range, slot)), ['100.64.4.2', undefined]);
  assert.equal(slotAddress(parseCidr('100.64.4.0/22')!, 1019), '100.64.7.253');
  assert.equal(firstNameserver('# x\nsearch lan\nnameserver fe80::1\nnameserver 10.0.0.53\nnameserver 1.1.1.1\n'), '10.0.0.53');
  assert.equal(firstNameserver('search lan\n'), undefined);
});

import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { test } from 'node:test';
import { parseTcpTable } from '../../vm/init/ports.ts';

// Lines as the kernel prints them on a little-endian host (each 32-bit word in host order).
const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 20 4 30 10 -1
   3: garbage
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5252 1 0000000000000000 100 0 0 10 0
   2: 000080FE0000000034FEFF02FE2A9E45:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5353 1 0000000000000000 100 0 0 10 0
`;

test('listening sockets of /proc/net/tcp: only LISTEN rows, addresses and ports decoded', { skip: endianness() !== 'LE' }, () => {
  assert.deepEqual([...parseTcpTable(TCP, false)], [
    [4242, { port: 8080, address: '127.0.0.1' }],
    [4343, { port: 80, address: '0.0.0.0' }],
  ]);
});

test('listening sockets of /proc/net/tcp6: addresses shortened as usual', { skip: endianness() !== 'LE' }, () => {
  assert.deepEqual([...parseTcpTable(TCP6, true)], [
    [5151, { port: 8081, address: '::' }],
    [5252, { port: 9090, address: '::1' }],
    [5353, { port: 22, address: 'fe80::2ff:fe34:459e:2afe' }],
  ]);
});

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

describe('sprite policy get|set and the peer default for new sprites', () => {
  let peer: PeerProcess;
  let dir: string;
  before(async () => {
    peer = await startPeer({ poolDepth: 1, args: ['--egress-default-policy', 'defaults'] });
    dir = await mkdtemp(join(tmpdir(), 'sprite-policy-'));
    const created = await peer.cli(['create', 'pol-a']);
    assert.equal(created.code, 0, created.stderr);
  });
  after(async () => {
    await peer?.stop();
    if (peer) await removeDataDir(peer.dataDir);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a new sprite starts with the peer default, and sprite info shows it', async () => {
    const got = await peer.cli(['policy', 'get', 'pol-a']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'include defaults\ndeny *\n');
    const info = await peer.cli(['info', 'pol-a']);
    assert.match(info.stdout, /^network policy\s+include defaults, deny \*$/m);
  });

  test('set takes the rules in the order of the flags; the API stores exactly that', async () => {
    const set = await peer.cli(['policy', 'set', 'pol-a', '--allow', 'Example.com', '--deny', '*.ads.net', '--include-defaults', '--deny', '*']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'allow example.com\ndeny *.ads.net\ninclude defaults\ndeny *\n');
    const { body } = await peer.api('GET', '/v1/sprites/pol-a/policy/network');
    assert.deepEqual(body, { rules: [{ domain: 'example.com', action: 'allow' }, { domain: '*.ads.net', action: 'deny' }, { include: 'defaults' }, { domain: '*', action: 'deny' }] });
  });

  test('--file sets a JSON document; mistakes are one line on stderr and a non-zero exit', async () => {
    const file = join(dir, 'policy.json');
    await writeFile(file, JSON.stringify({ rules: [] }));
    const cleared = await peer.cli(['policy', 'set', 'pol-a', '--file', file, '--json']);
    assert.equal(cleared.code, 0, cleared.stderr);
    assert.deepEqual(JSON.parse(cleared.stdout), { rules: [] });
    assert.equal((await peer.cli(['policy', 'get', 'pol-a'])).stdout, '(no rules: every name allowed)\n');

    await writeFile(file, '{rules');
    const cases: [string[], number, RegExp][] = [
      [['--file', file], 2, /^sprite: --file .*: not a JSON document/],
      [['--file', file, '--allow', 'a.com'], 2, /not both/],
      [[], 2, /give the rules/],
      [['--allow', 'foo.*.com'], 1, /^sprite: .*must be a domain name/],
    ];
    for (const [flags, code, message] of cases) {
      const ran = await peer.cli(['policy', 'set', 'pol-a', ...flags]);
      assert.equal(ran.code, code, ran.stderr);
      assert.match(ran.stderr, message);
      assert.equal(ran.stderr.trim().split('\n').length, 1);
    }
    assert.equal((await peer.cli(['policy', 'get', 'nope-none'])).code, 1);
  });
});

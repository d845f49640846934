import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';
import { request } from '../proxy/helpers.ts';
import { startBackend, type StoreBackend } from '../vm/storage/helpers.ts';

/** Sprites sleep warm after 1 s without use and cold after 3 s. */
const SLEEPY = ['--warm-sleep-after', '1', '--cold-sleep-after', '3'];

describe('sleep and wake across three peers on one object store', () => {
  let store: StoreBackend;
  const peers: PeerProcess[] = [];
  let front: PeerProcess;
  let owner: PeerProcess;
  let proxyPort = 0;

  const state = async (): Promise<string> => (await front.api('GET', '/v1/sprites/napper')).body.state as string;
  const page = () => request(proxyPort, 'napper.sprites.localhost', '/', { headers: { authorization: `Bearer ${front.token}` } });

  before(async () => {
    store = await startBackend('s3');
    for (let i = 0; i < 3; i++) peers.push(await startPeer({ poolDepth: 1, join: peers[0], args: ['--object-store', store.url, ...SLEEPY] }));
    [front, owner] = peers as [PeerProcess, PeerProcess];
    for (const peer of peers) {
      await eventually(async () => ((await peer.api('GET', '/v1/peers')).body.peers as { state: string }[]).filter((p) => p.state === 'alive').length === 3, 30_000, 'three alive members');
    }
    // Placed on the owner directly, so the front peer is never the owner.
    await createOn(owner, 'napper');
    const made = await front.cli(['exec', 'napper', '--', 'sh', '-c', 'mkdir -p /www && echo napping > /www/index.html && sync']);
    assert.equal(made.code, 0, made.stderr);
    const service = await front.cli(['services', 'create', 'napper', 'web', '--http-port', '8080', '--', 'httpd', '-f', '-p', '8080', '-h', '/www']);
    assert.equal(service.code, 0, service.stderr);
    proxyPort = Number(new URL((await front.api('GET', '/v1/sprites/napper/url')).body.http).port);
  });
  after(async () => {
    for (const peer of peers) {
      await peer.stop();
      await removeDataDir(peer.dataDir);
    }
    await store?.stop();
  });

  test('a request through another peer\'s proxy wakes a sprite from warm sleep on its owner', async () => {
    await eventually(async () => (await state()) === 'warm', 20_000, 'warm sleep');
    const answer = await page();
    assert.equal(answer.status, 200, answer.body);
    assert.equal(answer.body, 'napping\n');
    assert.equal(await state(), 'running');
  });

  test('an exec sent to another peer wakes a sprite from cold sleep on its owner, disk and service intact', async () => {
    await eventually(async () => (await state()) === 'cold', 30_000, 'cold sleep');
    const result = await front.cli(['exec', 'napper', '--', 'cat', '/www/index.html']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'napping\n');
    await eventually(async () => {
      const services = (await front.api('GET', '/v1/sprites/napper/services')).body as { name: string; state: { status: string } }[];
      return services.length === 1 && services[0]!.name === 'web' && services[0]!.state.status === 'running';
    }, 10_000, 'the service running again');
    const { body } = await front.api('GET', '/v1/sprites/napper');
    assert.equal(body.owner, (await owner.api('GET', '/v1/health')).body.peer);
  });
});

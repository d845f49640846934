import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { APIError, Sprite, SpritesClient, type SpriteListStream, type SpriteStateEvent } from '@fly/sprites';
import { eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

/**
 * The sprite resource routes driven by the official SDK against two real peers, each with room for
 * two running sprites. Many calls go through the peer that does not own the sprite.
 */

const MiB = 1024 ** 2;

/** The host's view of a sprite's cgroup limits (the peer's cgroup key is a hash of its data dir). */
async function cgroupLimits(peer: PeerProcess, id: string): Promise<{ memory: number; quota: number }> {
  const key = createHash('sha256').update(peer.dataDir).digest('hex').slice(0, 10);
  const read = async (controller: string, file: string): Promise<number> => Number((await readFile(`/sys/fs/cgroup/${controller}/sprites/${key}/${id}/${file}`, 'utf8')).trim());
  return { memory: await read('memory', 'memory.limit_in_bytes'), quota: await read('cpu', 'cpu.cfs_quota_us') };
}

/** The APIError a call rejects with. */
async function apiError(call: Promise<unknown>): Promise<APIError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof APIError, `expected an APIError, got ${String(error)}`);
    return error;
  }
  assert.fail('the call succeeded');
}

/** Reads a watch stream until an event passes `wanted`; every event read is kept in `seen`. */
async function until(stream: SpriteListStream, seen: SpriteStateEvent[], wanted: (event: SpriteStateEvent) => boolean): Promise<SpriteStateEvent> {
  for (;;) {
    const event = await stream.next();
    assert.ok(event, 'the stream ended');
    seen.push(event);
    if (wanted(event)) return event;
  }
}

describe('sprites through @fly/sprites on two peers', () => {
  let a: PeerProcess;
  let b: PeerProcess;
  /** Admin clients of each peer, and a client of org acme on peer A. */
  let onA: SpritesClient;
  let onB: SpritesClient;
  let acme: SpritesClient;
  let acmeOnB: SpritesClient;
  const ids = new Map<string, PeerProcess>();
  /** The peer that owns a sprite, and the other one. */
  const owner = async (name: string): Promise<PeerProcess> => ids.get((await a.api('GET', `/v1/sprites/${name}`)).body.owner)!;
  const other = async (name: string): Promise<PeerProcess> => ((await owner(name)) === a ? b : a);
  const client = (peer: PeerProcess): SpritesClient => (peer === a ? onA : onB);

  before(async () => {
    a = await startPeer({ poolDepth: 1, args: ['--capacity', '2'] });
    b = await startPeer({ poolDepth: 1, join: a, args: ['--capacity', '2'] });
    for (const peer of [a, b]) {
      ids.set((await (await fetch(`${peer.url}/v1/health`)).json() as { peer: string }).peer, peer);
      await eventually(async () => ((await peer.api('GET', '/v1/peers')).body.peers as { state: string; api: string }[]).filter((p) => p.state === 'alive' && p.api).length === 2, 30_000, 'both peers alive');
    }
    onA = new SpritesClient(a.token, { baseURL: a.url });
    onB = new SpritesClient(a.token, { baseURL: b.url });
    assert.equal((await a.api('POST', '/v1/orgs', { name: 'acme' })).status, 201);
    const token = (await a.api('POST', '/v1/tokens', { name: 'acme-sdk', org: 'acme' })).body.token as string;
    acme = new SpritesClient(token, { baseURL: a.url });
    acmeOnB = new SpritesClient(token, { baseURL: b.url });
    await eventually(async () => (await acmeOnB.listSprites().catch(() => undefined))?.organizationName === 'acme', 20_000, 'the acme token on B');
  });
  after(async () => {
    await b?.stop();
    await a?.stop();
    if (b) await removeDataDir(b.dataDir);
    if (a) await removeDataDir(a.dataDir);
  });

  test('createSprite in each of its signatures, on either peer, with limits, labels, environment and URL settings', async () => {
    const plain = await onA.createSprite('sdk-one');
    assert.ok(plain instanceof Sprite);
    assert.deepEqual([plain.name, plain.status, plain.organizationName, plain.urlSettings?.auth, plain.labels], ['sdk-one', 'running', 'admin', 'sprite', []]);
    assert.deepEqual(plain.config, { ramMB: 1024, cpus: 1, region: undefined, storageGB: 100 }, "the peer's limits are the default");
    assert.match(plain.version ?? '', /^[0-9a-f]{12}$/);
    assert.ok(plain.createdAt instanceof Date && plain.lastRunningAt instanceof Date);

    const sized = await onB.createSprite('sdk-two', { ramMB: 256, cpus: 0.5 });
    assert.deepEqual(sized.config, { ramMB: 256, cpus: 0.5, region: undefined, storageGB: 100 });
    assert.deepEqual(await cgroupLimits(await owner('sdk-two'), sized.id!), { memory: 256 * MiB, quota: 50_000 }, 'the cgroup has the asked limits');
    assert.equal((await sized.getResourcesPolicy()).memory?.limitMB, 256, 'without a resources policy the created limit is in force');

    const labelled = await onA.createSprite('sdk-three', undefined, { labels: ['team-a', 'env=prod'], environment: { GREETING: 'hello there' }, urlSettings: { auth: 'public' } });
    assert.deepEqual([labelled.labels, labelled.environment, labelled.urlSettings?.auth], [['team-a', 'env=prod'], { GREETING: 'hello there' }, 'public']);
    assert.equal((await labelled.execFile('sh', ['-c', 'echo "$GREETING"'])).stdout, 'hello there\n', 'execs get the environment');
    assert.equal((await labelled.execFile('sh', ['-c', 'echo "$GREETING"'], { env: { GREETING: 'mine' } })).stdout, 'mine\n', "an exec's own variables win");
    const service = await a.cli(['services', 'create', 'sdk-three', 'greeter', '--', 'sh', '-c', 'echo "$GREETING" > /root/greeting; exec sleep 100000']);
    assert.equal(service.code, 0, service.stderr);
    await eventually(async () => (await labelled.execFile('cat', ['/root/greeting']).catch(() => undefined))?.stdout === 'hello there\n' || undefined, 10_000, 'services get the environment');

    const mine = await acme.createSprite('acme-four', { config: { ramMB: 128 }, labels: ['acme'], waitForCapacity: false });
    assert.deepEqual([mine.organizationName, mine.config?.ramMB, mine.labels], ['acme', 128, ['acme']]);
  });

  test('a full mesh answers 429 as parseAPIError reads it; wait_for_capacity waits for room instead', async () => {
    // Four sprites run on two peers with room for two each.
    const full = await apiError(onA.createSprite('sdk-five'));
    assert.deepEqual([full.statusCode, full.errorCode, full.isConcurrentLimitExceeded(), full.retryAfterSeconds, full.retryAfterHeader, full.currentCount], [429, 'concurrent_sprite_limit_exceeded', true, 10, 10, 2]);
    const waiting = onB.createSprite('sdk-five', { waitForCapacity: true });
    // One place comes free on each peer, so whichever took the create sees room.
    const firstOn = new Map<PeerProcess, string>();
    for (const name of ['sdk-one', 'sdk-two', 'sdk-three', 'acme-four']) {
      const peer = await owner(name);
      if (!firstOn.has(peer)) firstOn.set(peer, name);
    }
    assert.equal(firstOn.size, 2, 'both peers run sprites');
    for (const [peer, name] of firstOn) assert.equal((await peer.api('POST', `/v1/sprites/${name}/stop`)).status, 200);
    const five = await waiting;
    assert.equal(five.status, 'running');
  });

  test('getSprite, listSprites page by page and by prefix, listAllSprites, on either peer and per org', async () => {
    const got = await onB.getSprite('sdk-three');
    assert.deepEqual([got.name, got.labels, got.urlSettings?.auth, got.environment?.GREETING], ['sdk-three', ['team-a', 'env=prod'], 'public', 'hello there']);
    const names: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await (pages % 2 === 0 ? onA : onB).listSprites({ prefix: 'sdk-', maxResults: 2, continuationToken: token });
      assert.ok(page.sprites.length <= 2);
      names.push(...page.sprites.map((s) => s.name));
      assert.equal(page.organizationName, 'admin');
      token = page.hasMore ? page.nextContinuationToken : undefined;
      pages += 1;
    } while (token);
    assert.deepEqual([names, pages], [['sdk-five', 'sdk-one', 'sdk-three', 'sdk-two'], 2]);

    const all = await onA.listSprites();
    assert.equal(all.hasMore, false);
    const counted = { running: 0, warm: 0, cold: 0 } as Record<string, number>;
    for (const sprite of all.sprites) if (sprite.status in counted) counted[sprite.status]! += 1;
    assert.deepEqual([all.running, all.warm, all.cold], [counted.running, counted.warm, counted.cold]);
    assert.ok(all.sprites.some((s) => s.organization === 'acme'), 'an admin sees every org');

    const listed = await onB.listAllSprites('sdk-t');
    assert.ok(listed.every((s) => s instanceof Sprite));
    assert.deepEqual(listed.map((s) => s.name), ['sdk-three', 'sdk-two']);
    assert.deepEqual((await acmeOnB.listAllSprites()).map((s) => s.name), ['acme-four'], 'an org sees its own');
    const acmeList = await acme.listSprites();
    assert.equal(acmeList.organizationName, 'acme');
    const acmeStatus = acmeList.sprites[0]!.status;
    assert.deepEqual([acmeList.running, acmeList.warm, acmeList.cold], ['running', 'warm', 'cold'].map((state) => (state === acmeStatus ? 1 : 0)), "the org's own counts");
  });

  test('watchSprites: a state change reaches the stream, and only the caller org\'s', async () => {
    const admin = await onA.watchSprites({ prefix: 'sdk-' });
    const own = await acme.watchSprites();
    const adminSeen: SpriteStateEvent[] = [];
    const acmeSeen: SpriteStateEvent[] = [];
    try {
      const beat = await until(own, acmeSeen, (e) => e.type === 'heartbeat');
      assert.equal(beat.organization.name, 'acme');
      await until(admin, adminSeen, (e) => e.type === 'heartbeat');
      // An admin sprite changes first (seen on A), then acme's own, through the peer that does not own it.
      const adminName = 'sdk-one';
      const before = (await onA.getSprite(adminName)).status;
      await (await owner(adminName)).api('POST', `/v1/sprites/${adminName}/${before === 'running' ? 'stop' : 'start'}`);
      await until(admin, adminSeen, (e) => e.name === adminName && e.status !== before);
      const target = (await acme.getSprite('acme-four')).status === 'running' ? 'stopped' : 'running';
      const peer = await other('acme-four');
      const answer = await fetch(`${peer.url}/v1/sprites/acme-four/${target === 'running' ? 'start' : 'stop'}`, { method: 'POST', headers: { authorization: `Bearer ${acme.token}` } });
      assert.equal(answer.status, 200);
      const event = await until(own, acmeSeen, (e) => e.name === 'acme-four' && e.status === target);
      assert.equal(event.organization.name, 'acme');
      assert.ok(event.timestamp instanceof Date);
      assert.equal(event.organization.running, target === 'running' ? 1 : 0);
      assert.deepEqual(acmeSeen.filter((e) => e.name !== undefined && e.name !== 'acme-four'), [], "no other org's sprite");
    } finally {
      admin.close();
      own.close();
    }
  });

  test('updateSprite, updateURLSettings and Sprite.update through the peer that does not own the sprite', async () => {
    const name = 'sdk-two';
    const via = client(await other(name));
    const relabelled = await via.updateSprite(name, { labels: ['blue', 'green'] });
    assert.deepEqual([relabelled.labels, relabelled.urlSettings?.auth], [['blue', 'green'], 'sprite']);
    await via.updateURLSettings(name, { auth: 'public' });
    // The owner answered the update; this peer's replica has it once gossip brings it over.
    const got = await eventually(async () => {
      const sprite = await via.getSprite(name);
      return sprite.urlSettings?.auth === 'public' ? sprite : undefined;
    }, 10_000, 'the URL setting on the other peer');
    assert.deepEqual(got.labels, ['blue', 'green'], 'a partial update leaves the rest');
    const both = await via.sprite(name).update({ urlSettings: { auth: 'sprite' }, labels: [] });
    assert.deepEqual([both.labels, both.urlSettings?.auth], [[], 'sprite']);
  });

  test('bad input is a 400 the SDK reads: labels, settings that cannot be honoured, limits over the maximum', async () => {
    for (const labels of [['has space'], Array.from({ length: 33 }, (_, i) => `l${i}`), ['x'.repeat(64)]]) {
      const bad = await apiError(onA.updateSprite('sdk-one', { labels }));
      assert.deepEqual([bad.statusCode, bad.errorCode], [400, 'ERR_BAD_REQUEST']);
      assert.match(bad.message, /labels are at most 32/);
    }
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => onB.createSprite('sdk-bad', { labels: ['no!'] }), /labels/],
      [() => onB.createSprite('sdk-bad', { ramMB: 4096 }), /ram_mb must be a whole number from 16 to 1024/],
      [() => onB.createSprite('sdk-bad', { cpus: 8 }), /cpus must be from 0.01 to 1/],
      [() => onB.createSprite('sdk-bad', { region: 'ord' }), /no regions/],
      [() => onB.createSprite('sdk-bad', { storageGB: 5 }), /storage_gb/],
      [() => onB.createSprite('sdk-bad', { runtime: 'dev' }), /runtime can only be default/],
      [() => onB.createSprite('sdk-bad', { urlSettings: { privateAccess: 'admins' } }), /private_access can only be org_users/],
      [() => onA.updateSprite('sdk-one', { urlSettings: { auth: 'anyone' } }), /auth must be sprite or public/],
    ];
    for (const [call, message] of cases) {
      const bad = await apiError(call());
      assert.deepEqual([bad.statusCode, bad.errorCode], [400, 'ERR_BAD_REQUEST'], bad.message);
      assert.match(bad.message, message);
    }
    assert.equal((await a.api('GET', '/v1/sprites/sdk-bad')).status, 404, 'nothing was made');
  });

  test('restartSprite and Sprite.restart start a new sandbox on the same disk, services included; checkSprite probes sprite-init', async () => {
    const name = 'sdk-five';
    const home = await owner(name);
    const service = await home.cli(['services', 'create', name, 'ticker', '--', 'sh', '-c', 'date +%s%N >> /root/starts; exec sleep 100000']);
    assert.equal(service.code, 0, service.stderr);
    await eventually(async () => (await home.cli(['exec', name, '--', 'cat', '/root/starts'])).stdout.trim().split('\n').length === 1 || undefined, 10_000, 'the service started');
    assert.equal((await home.cli(['exec', name, '--', 'sh', '-c', 'echo mark > /dev/shm/mark && echo keep > /root/keep'])).code, 0);

    const result = await client(await other(name)).restartSprite(name);
    const id = (await onA.getSprite(name)).id;
    assert.deepEqual([result.spriteName, result.machineId], [name, id]);
    assert.match(result.message, /restarted/);
    const after = await home.cli(['exec', name, '--', 'sh', '-c', 'cat /root/keep; ls /dev/shm']);
    assert.equal(after.stdout, 'keep\n', 'the disk stayed, the memory-backed /dev/shm is new');
    await eventually(async () => (await home.cli(['exec', name, '--', 'cat', '/root/starts'])).stdout.trim().split('\n').length === 2 || undefined, 10_000, 'the service started again');
    const again = await onB.sprite(name).restart();
    assert.equal(again.spriteName, name);
    assert.equal((await onA.getSprite(name)).status, 'running');

    const check = await client(await other(name)).checkSprite(name);
    assert.deepEqual([check.spriteName, check.spriteId, check.status, check.reason], [name, id, 'healthy', undefined]);
    assert.ok(check.checkedAt instanceof Date && typeof check.elapsed === 'number');
    assert.equal((await onA.sprite(name).check()).status, 'healthy');
    const stopped = (await onA.listSprites({ prefix: 'sdk-' })).sprites.find((s) => s.status === 'stopped')!;
    const idle = await onB.checkSprite(stopped.name);
    assert.equal(idle.status, 'not_running');
    assert.match(idle.reason ?? '', /is stopped/);
    assert.equal((await onA.getSprite(stopped.name)).status, 'stopped', 'a check does not start a sprite');
  });

  test('upgradeSprite and Sprite.upgrade: a sprite on the current runtime stays as it is', async () => {
    const before = await onA.getSprite('sdk-five');
    await onB.upgradeSprite('sdk-five');
    await onA.sprite('sdk-five').upgrade();
    const after = await onA.getSprite('sdk-five');
    assert.deepEqual([after.status, after.version], ['running', before.version]);
  });

  test("another org's sprite answers every call exactly as a missing one", async () => {
    const missing = await apiError(acme.getSprite('ghost-sprite'));
    assert.deepEqual([missing.statusCode, missing.errorCode], [404, 'ERR_SPRITE_NOT_FOUND']);
    for (const sdk of [acme, acmeOnB]) {
      const calls: (() => Promise<unknown>)[] = [
        () => sdk.getSprite('sdk-one'), () => sdk.updateSprite('sdk-one', { labels: ['x'] }), () => sdk.deleteSprite('sdk-one'), () => sdk.restartSprite('sdk-one'),
        () => sdk.checkSprite('sdk-one'), () => sdk.upgradeSprite('sdk-one'), () => sdk.sprite('sdk-one').update({ labels: [] }),
      ];
      for (const call of calls) {
        const hidden = await apiError(call());
        assert.deepEqual([hidden.statusCode, hidden.errorCode, hidden.message], [404, 'ERR_SPRITE_NOT_FOUND', missing.message.replace('ghost-sprite', 'sdk-one')]);
      }
    }
    assert.equal((await onA.getSprite('sdk-one')).name, 'sdk-one', 'untouched');
  });

  test('deleteSprite, Sprite.delete and Sprite.destroy, through either peer', async () => {
    await client(await other('sdk-one')).deleteSprite('sdk-one');
    await onB.sprite('sdk-two').delete();
    await onA.sprite('sdk-three').destroy();
    await acmeOnB.deleteSprite('acme-four');
    for (const name of ['sdk-one', 'sdk-two', 'sdk-three', 'acme-four']) {
      const gone = await apiError(onB.getSprite(name));
      assert.deepEqual([gone.statusCode, gone.errorCode], [404, 'ERR_SPRITE_NOT_FOUND']);
    }
    assert.deepEqual((await onA.listAllSprites()).map((s) => s.name), ['sdk-five']);
  });
});

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decode } from 'cbor-x';
import { Lease } from '../../../vm/storage/device/lease.ts';
import { hasCode } from '../../../vm/storage/errors.ts';
import { openObjectStore } from '../../../vm/storage/store/open.ts';
import type { ObjectStore } from '../../../vm/storage/store/store.ts';
import { startConditionalS3 } from './conditional-s3.ts';
import { interceptStore, openEngine, removeTemp, seededBytes, startBackend, tempDir, type StoreBackend } from './helpers.ts';

/**
 * Lease fencing on two S3-protocol stores: fauxqs as it is (it ignores If-None-Match and If-Match,
 * so the lease relies on read-back and epochs) and fauxqs behind a layer that enforces them as S3
 * does (conditional-s3.ts). Two holders race for a lease; a stale holder's renewal after a forced
 * takeover; a stale writer's commits after a takeover.
 */

const UNIT = 64 * 1024;
const SIZE = 16 * 1024 * 1024;
const backends: Record<'ignores' | 'honours', StoreBackend & { refused?: () => number }> = {} as never;
const dirs: string[] = [];
const dir = async (): Promise<string> => {
  const path = await tempDir('lease');
  dirs.push(path);
  return path;
};
let volumeCount = 0;
const volume = (): string => `lease-${(volumeCount += 1)}`;

before(async () => {
  backends.ignores = await startBackend('s3');
  backends.honours = await startConditionalS3();
});
after(async () => {
  for (const path of dirs) await removeTemp(path);
  await backends.ignores?.stop();
  await backends.honours?.stop();
});

async function leaseBody(store: ObjectStore, id: string): Promise<{ epoch: number; owner: string }> {
  return decode((await store.get(`volumes/${id}/lease`)).body) as { epoch: number; owner: string };
}

for (const kind of ['ignores', 'honours'] as const) {
  test(`${kind} conditional writes: the store reports it`, async () => {
    const store = await openObjectStore(backends[kind].url);
    try {
      assert.equal(store.conditionalWrites, kind === 'honours');
    } finally {
      await store.close();
    }
  });

  test(`${kind} conditional writes: two holders race for a free lease and exactly one wins`, async () => {
    const store = await openObjectStore(backends[kind].url);
    try {
      const id = volume();
      // Both read "no lease" before either writes, and both writes finish before either reads back.
      let arrived = 0;
      let finished = 0;
      let bothArrived = (): void => undefined;
      let bothFinished = (): void => undefined;
      const arrivals = new Promise<void>((resolve) => { bothArrived = resolve; });
      const finishes = new Promise<void>((resolve) => { bothFinished = resolve; });
      const racing = (): ObjectStore => interceptStore(store, {
        put: async (put, key, body, options) => {
          if ((arrived += 1) === 2) bothArrived();
          await arrivals;
          try {
            return await put(key, body, options);
          } finally {
            if ((finished += 1) === 2) bothFinished();
            await finishes;
          }
        },
      });
      const holders = ['owner-a', 'owner-b'].map((owner) => new Lease({ store: racing(), volume: id, owner }));
      const outcomes = await Promise.allSettled(holders.map((lease) => lease.acquire()));
      const won = outcomes.flatMap((outcome, i) => (outcome.status === 'fulfilled' ? [i] : []));
      assert.equal(won.length, 1, `one winner: ${JSON.stringify(outcomes.map((o) => o.status))}`);
      const lost = outcomes.find((outcome) => outcome.status === 'rejected') as PromiseRejectedResult;
      assert.ok(hasCode(lost.reason, 'ERR_PRECONDITION_FAILED'), String(lost.reason));
      assert.deepEqual(await leaseBody(store, id), { ...(await leaseBody(store, id)), epoch: 1, owner: `owner-${'ab'[won[0]!]}` });
      // The loser holds nothing: its first commit check refuses.
      await assert.rejects(holders[1 - won[0]!]!.ensure(), (error) => hasCode(error, 'ERR_LEASE_LOST'));
      if (kind === 'honours') assert.ok(backends.honours.refused!() >= 1, 'the store refused the second create');
    } finally {
      await store.close();
    }
  });

  test(`${kind} conditional writes: a stale holder's renewal after a forced takeover does not keep the lease`, async () => {
    const store = await openObjectStore(backends[kind].url);
    try {
      const id = volume();
      let takeover: (() => Promise<unknown>) | undefined;
      // The stale holder has read its own lease and passed its check; the takeover lands just before its write.
      const stale = new Lease({
        store: interceptStore(store, {
          put: async (put, key, body, options) => {
            if (options?.ifMatch !== undefined && takeover) await takeover();
            return put(key, body, options);
          },
        }),
        volume: id, owner: 'stale', checkIntervalMs: 0,
      });
      await stale.acquire();
      const taker = new Lease({ store, volume: id, owner: 'taker', checkIntervalMs: 0 });
      takeover = () => taker.acquire({ force: true });
      const renewal = await stale.renew().then(() => 'renewed', (error: unknown) => error);
      if (kind === 'honours') assert.ok(hasCode(renewal, 'ERR_LEASE_LOST'), `the store refused the stale write: ${String(renewal)}`);
      else assert.equal(renewal, 'renewed', 'a store that ignores If-Match lets the stale write land');
      // Either way the taker keeps the lease (it puts its epoch back over an older one) and the stale holder is fenced.
      await taker.ensure();
      assert.deepEqual(await leaseBody(store, id), { ...(await leaseBody(store, id)), epoch: 2, owner: 'taker' });
      await assert.rejects(stale.ensure(), (error) => hasCode(error, 'ERR_LEASE_LOST'));
      await taker.ensure();
    } finally {
      await store.close();
    }
  });

  test(`${kind} conditional writes: a stale writer's commits after a takeover never replace the new owner's metadata`, async () => {
    const url = backends[kind].url;
    const id = volume();
    // A long check interval: the stale writer does not notice the takeover, so its commit lands.
    const old = await openEngine(url, await dir(), { leaseCheckMs: 60_000 });
    const taker = await openEngine(url, await dir());
    try {
      const device = await old.device((await old.create(id, { size: SIZE })).id);
      await device.write(0, seededBytes('before', UNIT));
      await device.fsync();
      await assert.rejects(taker.open(id), (error) => hasCode(error, 'ERR_LEASE_HELD'));
      await taker.open(id, { force: true });
      const fresh = await taker.device(id);
      await fresh.write(UNIT, seededBytes('new owner', UNIT));
      await fresh.fsync();
      await device.write(UNIT, seededBytes('stale', UNIT));
      await device.write(2 * UNIT, seededBytes('stale', UNIT));
      assert.equal(await device.fsync().then(() => 'landed', (error: unknown) => error), 'landed', 'the stale commit reaches the store');
    } finally {
      await old.close({ flush: false });
      await taker.close();
    }
    const third = await openEngine(url, await dir());
    try {
      const out = Buffer.alloc(3 * UNIT);
      await (await third.device(id)).read(0, out);
      assert.ok(out.subarray(0, UNIT).equals(seededBytes('before', UNIT)));
      assert.ok(out.subarray(UNIT, 2 * UNIT).equals(seededBytes('new owner', UNIT)), 'the new owner\'s write stands');
      assert.ok(out.subarray(2 * UNIT).equals(Buffer.alloc(UNIT)), 'the stale write is not there');
    } finally {
      await third.close();
    }
  });
}

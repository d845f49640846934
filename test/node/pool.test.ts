import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../../vm/logger.ts';
import { WarmPool } from '../../node/pool.ts';

function counterPool(depth: number, concurrency = 1) {
  let next = 0;
  const discarded: number[] = [];
  const pool = new WarmPool<number>({
    depth, concurrency, logger: silentLogger(),
    warm: async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      return next++;
    },
    discard: async (entry) => {
      discarded.push(entry);
    },
  });
  return { pool, discarded, warmed: () => next };
}

test('fills to depth, refills after a take, and discards the rest on stop', async () => {
  const { pool, discarded, warmed } = counterPool(3);
  pool.start();
  await pool.full();
  assert.equal(pool.status().ready, 3);
  assert.equal(pool.take(), 0);
  await pool.full();
  assert.equal(warmed(), 4);
  await pool.stop();
  assert.deepEqual(discarded.sort(), [1, 2, 3]);
  assert.equal(pool.take(), undefined);
});

test('an empty pool answers undefined instead of waiting', async () => {
  const { pool } = counterPool(0);
  pool.start();
  assert.equal(pool.take(), undefined);
  await pool.stop();
});

test('a failing warm-up is counted and retried later, not in a tight loop', async () => {
  let calls = 0;
  const pool = new WarmPool<number>({
    depth: 1, concurrency: 1, logger: silentLogger(), discard: async () => undefined,
    warm: async () => {
      calls += 1;
      throw new Error('no sandbox');
    },
  });
  pool.start();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(calls, 1);
  assert.equal(pool.status().failures, 1);
  await pool.stop();
});

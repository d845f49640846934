import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdleTimer, type SleepTarget } from '../../node/idle.ts';
import { createLogger } from '../../vm/logger.ts';
import type { SleepCandidate } from '../../node/sprites.ts';
import { Activity } from '../../proxy/activity.ts';

/** A sprite manager stand-in that records what the timer asked for and obeys it. */
class Sprites implements SleepTarget {
  readonly sprites = new Map<string, SleepCandidate & { cold?: boolean }>();
  readonly calls: string[] = [];

  add(name: string, since: number): void {
    this.sprites.set(name, { name, frozen: false, since });
  }

  sleepCandidates(): SleepCandidate[] {
    return [...this.sprites.values()].filter((s) => !s.cold);
  }

  async freeze(name: string, idle: () => boolean): Promise<boolean> {
    this.calls.push(`freeze ${name}`);
    if (!idle()) return false;
    this.sprites.get(name)!.frozen = true;
    return true;
  }

  async sleepCold(name: string): Promise<boolean> {
    this.calls.push(`cold ${name}`);
    this.sprites.get(name)!.cold = true;
    return true;
  }
}

function setup(): { clock: { now: number }; sprites: Sprites; proxy: Activity; timer: IdleTimer } {
  const clock = { now: 1_000_000 };
  const sprites = new Sprites();
  const proxy = new Activity(() => clock.now);
  const timer = new IdleTimer({ warmAfterMs: 1000, coldAfterMs: 5000 }, {
    target: sprites, proxyActivity: (name) => proxy.get(name), logger: createLogger({}, () => undefined), now: () => clock.now,
  });
  return { clock, sprites, proxy, timer };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('an idle sprite is frozen after the warm time and stopped after the cold time, counted from its last use', async () => {
  const { clock, sprites, proxy, timer } = setup();
  sprites.add('a', clock.now);
  clock.now += 600;
  proxy.touch('a');
  clock.now += 600;
  timer.check();
  assert.deepEqual(sprites.calls, [], 'used 600 ms ago: awake');
  clock.now += 500;
  timer.check();
  await settle();
  assert.deepEqual(sprites.calls, ['freeze a']);
  clock.now += 3000;
  timer.check();
  await settle();
  assert.deepEqual(sprites.calls, ['freeze a'], '4.1 s idle: still warm');
  clock.now += 1000;
  timer.check();
  await settle();
  assert.deepEqual(sprites.calls, ['freeze a', 'cold a']);
});

test('open API streams, proxied requests and WebSockets keep a sprite awake however long they last', async () => {
  const { clock, sprites, proxy, timer } = setup();
  for (const name of ['exec', 'request', 'ws']) sprites.add(name, clock.now);
  const closeExec = timer.open('exec');
  const closeRequest = proxy.openRequest('request');
  const closeWs = proxy.openWebSocket('ws');
  clock.now += 60_000;
  timer.check();
  await settle();
  assert.deepEqual(sprites.calls, []);
  closeExec();
  closeRequest();
  closeWs();
  clock.now += 999;
  timer.check();
  await settle();
  assert.deepEqual(sprites.calls, [], 'use ends when the stream closes: the idle time starts there');
  clock.now += 1;
  timer.check();
  await settle();
  assert.deepEqual(sprites.calls.sort(), ['freeze exec', 'freeze request', 'freeze ws']);
});

test('use that arrives after the decision keeps the sprite awake', async () => {
  const { clock, sprites, timer } = setup();
  sprites.add('racy', clock.now);
  clock.now += 2000;
  const freeze = sprites.freeze.bind(sprites);
  sprites.freeze = (name, idle) => {
    clock.now += 1;
    timer.open(name)();
    return freeze(name, idle);
  };
  timer.check();
  await settle();
  assert.deepEqual(sprites.calls, ['freeze racy']);
  assert.equal(sprites.sprites.get('racy')!.frozen, false);
});

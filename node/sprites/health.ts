import { runtimeVersion } from '../../vm/index.ts';
import type { Machines } from './machines.ts';
import type { SpriteLifecycle } from './lifecycle.ts';

/** How long sprite-init has to answer a check. */
const CHECK_TIMEOUT_MS = 5000;

/** What a check found: sprite-init answered (healthy), did not or said its container is down (unhealthy), or there is no sandbox. */
export interface SpriteHealth {
  status: 'healthy' | 'unhealthy' | 'not_running';
  /** Why it is not healthy; null when it is. */
  reason: string | null;
  /** Milliseconds the probe took. */
  elapsedMs: number;
}

/**
 * Probes a sprite this peer owns: asks its sprite-init for its status over the control socket
 * (which answers in warm sleep too: sprite-init stays outside the frozen cgroup). A sprite with no
 * sandbox (cold, stopped, failed) is not woken: it is reported not running.
 */
export async function checkSprite(machines: Pick<Machines, 'owned' | 'running'>, name: string): Promise<SpriteHealth> {
  const record = machines.owned(name);
  const machine = machines.running(name);
  if (!machine) return { status: 'not_running', reason: `sprite ${name} is ${record.state}: it has no sandbox until it starts`, elapsedMs: 0 };
  const began = performance.now();
  const elapsed = (): number => Math.round((performance.now() - began) * 10) / 10;
  try {
    const answer = await machine.sandbox.control.call<unknown>({ op: 'status' }, CHECK_TIMEOUT_MS);
    if ((answer as { running?: unknown } | null)?.running !== true) return { status: 'unhealthy', reason: 'sprite-init answers but its container is not running', elapsedMs: elapsed() };
    return { status: 'healthy', reason: null, elapsedMs: elapsed() };
  } catch (error) {
    return { status: 'unhealthy', reason: `sprite-init did not answer: ${(error as Error).message}`, elapsedMs: elapsed() };
  }
}

/**
 * Makes a sprite this peer owns run the peer's current sprite-init from its next start. Every
 * start runs sprite-init from the peer's files, so only a sprite that sleeps warm on an older one
 * needs a push: its wake would be a thaw, so it is put to cold sleep now and wakes with a start. An
 * awake sprite keeps its sandbox until its next restart or cold sleep (nothing is cut off). True
 * when the sprite runs an older version than the peer's now.
 */
export async function upgradeSprite(machines: Pick<Machines, 'owned' | 'running'>, lifecycle: Pick<SpriteLifecycle, 'sleepCold'>, name: string): Promise<boolean> {
  machines.owned(name);
  const machine = machines.running(name);
  if (!machine || machine.version === (await runtimeVersion())) return false;
  if (machine.sandbox.frozen) await lifecycle.sleepCold(name);
  return true;
}

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { SpritesClient, type Sprite } from '@fly/sprites';
import { createOn, eventually, removeDataDir, startPeer, type PeerProcess } from '../helpers/peer.ts';

/** What a process sees of its confinement: user, capabilities, filters, cgroups, limits and environment. */
const CONFINEMENT = 'grep -E "^(Uid|Gid|Cap|NoNewPrivs|Seccomp)" /proc/self/status; cat /proc/self/cgroup; ulimit -a; umask; env | sort';

/**
 * Execs without a terminal run on the sprite agent (forked inside the container, no `runc exec`),
 * visible from inside as the parent of the command: an agent's pid, where a `runc exec` child's
 * parent is outside the sprite (0). Terminals still take `runc exec`.
 */
describe('execs on the sprite agent', () => {
  let owner: PeerProcess;
  let other: PeerProcess;
  let here: Sprite;
  let there: Sprite;

  /** The parent pid of a plain exec's command. */
  const parent = async (sprite: Sprite): Promise<number> => Number(String((await sprite.execFile('sh', ['-c', 'echo $PPID'])).stdout).trim());
  /** Runs `script` on a terminal (so through `runc exec`, not the agent): its output without the CRs. */
  const onTerminal = async (script: string): Promise<string> => {
    const cmd = here.spawn('sh', ['-c', script], { tty: true });
    let out = '';
    cmd.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    assert.equal(await cmd.wait(), 0);
    return out.replace(/\r/g, '');
  };
  /** How many `sleep <marker> ...` processes run in the sprite. */
  const running = async (marker: string): Promise<number> => Number(String((await here.execFile('sh', ['-c',
    `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '^sleep ${marker} ' || true`])).stdout).trim());

  before(async () => {
    owner = await startPeer({ poolDepth: 1 });
    other = await startPeer({ poolDepth: 0, join: owner });
    await createOn(owner, 'agent');
    await eventually(async () => (await fetch(`${other.url}/v1/sprites/agent`, { headers: { authorization: `Bearer ${owner.token}` } })).status === 200, 20_000, 'the sprite on the other peer');
    here = new SpritesClient(owner.token, { baseURL: owner.url }).sprite('agent');
    there = new SpritesClient(owner.token, { baseURL: other.url }).sprite('agent');
  });
  after(async () => {
    for (const peer of [other, owner]) {
      await peer?.stop();
      if (peer) await removeDataDir(peer.dataDir);
    }
  });

  test('a command forked by the agent is confined exactly as a runc exec child, with the same environment', async () => {
    // The agent starts with the sprite: plain execs reach it once it is up.
    const agent = await eventually(async () => (await parent(there)) || undefined, 30_000, 'an exec on the agent');
    const cmdline = String((await here.execFile('cat', [`/proc/${agent}/cmdline`])).stdout);
    assert.match(cmdline, /\0sprite-agent\0/);
    const env = { PATH: '/usr/bin:/bin:/extra', EXTRA: 'yes' };
    const viaAgent = String((await there.execFile('sh', ['-c', `echo $PPID; ${CONFINEMENT}`], { env })).stdout);
    const cmd = here.spawn('sh', ['-c', `echo $PPID; ${CONFINEMENT}`], { tty: true, env });
    let viaRunc = '';
    cmd.stdout.on('data', (chunk: Buffer) => (viaRunc += chunk.toString()));
    assert.equal(await cmd.wait(), 0);
    const [agentParent, ...agentSeen] = viaAgent.split('\n');
    const [runcParent, ...runcSeen] = viaRunc.replace(/\r/g, '').split('\n');
    assert.equal(Number(agentParent), agent);
    assert.equal(Number(runcParent), 0);
    assert.deepEqual(agentSeen, runcSeen);
    assert.ok(agentSeen.includes('PATH=/usr/bin:/bin:/extra') && agentSeen.includes('EXTRA=yes') && agentSeen.includes('HOME=/root'));
  });

  test('a command on the agent is a session: listed with its pid as the sprite sees it, its whole group killed by the kill API', async () => {
    const agent = await eventually(async () => (await parent(here)) || undefined, 30_000, 'an exec on the agent');
    const cmd = there.spawn('sh', ['-c', 'echo $PPID $$; sleep 1003 7 & exec sleep 1003 8'], { detachable: true });
    let out = '';
    cmd.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const [ppid, pid] = (await eventually(() => (out.includes('\n') ? out : undefined), 10_000, 'the pids')).trim().split(' ').map(Number);
    assert.equal(ppid, agent);
    const id = await eventually(async () => (await here.listSessions()).find((s) => s.command.includes('1003'))?.id, 10_000, 'the session');
    await eventually(async () => (await running('1003')) === 2 || undefined, 10_000, 'both sleeps');
    const events = [];
    for await (const event of await here.killSession(id, 'TERM', '5s')) events.push(event);
    assert.equal(events[0]!.pid, pid);
    assert.deepEqual(events.map((e) => e.type), ['signal', 'exited', 'complete']);
    assert.equal(events.at(-1)!.exitCode, 128 + 15);
    await eventually(async () => (await running('1003')) === 0 || undefined, 10_000, 'the group gone');
  });

  test('an agent killed inside the sprite: the next exec still works on runc exec, later ones on a new agent', async () => {
    const first = await eventually(async () => (await parent(here)) || undefined, 30_000, 'an exec on the agent');
    await onTerminal(`kill -9 ${first}`);
    // Nothing restarts the agent until an exec needs it, so this one is a runc exec child.
    assert.equal(await parent(there), 0);
    const ok = await there.execFile('sh', ['-c', 'echo ok; exit 4']).catch((error: { exitCode: number; stdout: string }) => error);
    assert.equal(ok.stdout, 'ok\n');
    assert.equal(ok.exitCode, 4);
    const second = await eventually(async () => (await parent(here)) || undefined, 30_000, 'an exec on a new agent');
    assert.notEqual(second, first);
  });

  test('an agent stopped inside the sprite is killed and replaced: execs still work, then run on a new agent', async () => {
    const stopped = await eventually(async () => (await parent(here)) || undefined, 30_000, 'an exec on the agent');
    await onTerminal(`kill -STOP ${stopped}`);
    // This one waits for the stopped agent, gives up on it and takes runc exec.
    assert.equal(await parent(there), 0);
    await eventually(async () => !(await onTerminal(`[ -e /proc/${stopped} ] && echo there || echo gone`)).includes('there') || undefined, 15_000, 'the stopped agent gone');
    const next = await eventually(async () => (await parent(here)) || undefined, 30_000, 'an exec on a new agent');
    assert.notEqual(next, stopped);
  });

  test('a command whose agent dies ends with 255 and says why, and does not stay behind', async () => {
    const agent = await eventually(async () => (await parent(here)) || undefined, 30_000, 'an exec on the agent');
    const cmd = there.spawn('sh', ['-c', 'exec sleep 1001 7']);
    let stderr = '';
    cmd.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await once(cmd, 'spawn');
    await eventually(async () => (await running('1001')) === 1 || undefined, 15_000, 'the command running');
    await onTerminal(`kill -9 ${agent}`);
    assert.equal(await cmd.wait(), 255);
    assert.match(stderr, /agent went away/);
    await eventually(async () => (await running('1001')) === 0 || undefined, 15_000, 'the orphaned command gone');
  });
});

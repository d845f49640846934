/**
 * One gossip-only peer for the gossip benchmark: a Mesh in a temp dir, driven over IPC.
 * Messages in: {write: name}, {burst: {prefix, count, perSecond}}, {count: prefix}, {members: true}, {stop: true}.
 * Messages out: {ready, addr, id, swarmKey}, {wrote, at}, {seen, at}, {burstDone}, {count, n}, {members}.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mesh } from '../../gossip/index.ts';
import { spritesTable } from '../../node/records/tables.ts';

const [swarmKeyFile, ...bootstrap] = process.argv.slice(2);
const send = (message: object): void => void process.send!(message);
const now = (): number => performance.timeOrigin + performance.now();
const dir = await mkdtemp(join(tmpdir(), 'gossip-bench-'));
const mesh = await Mesh.open({
  dataDir: dir, tables: [spritesTable], listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap, swarmKeyFile: swarmKeyFile === '-' ? undefined : swarmKeyFile,
  describe: () => ({ api: '', link: null, proxy: null, pool_target: 0, pool_ready: 0, capacity: 0, load: 0, drain: null, version: 'bench' }),
  logger: { info: () => undefined, warn: () => undefined },
});
mesh.store.subscribe(spritesTable, (event) => {
  if (event.origin === 'remote' && event.row) send({ seen: event.row.name, at: now() });
});
await mesh.start();

const row = (name: string) => ({
  name, id: name, owner: mesh.peerId, epoch: 1, state: 'running', url_auth: 'sprite', volume: null, http_port: 8080,
  created: new Date().toISOString(), updated: new Date().toISOString(), reason: null,
});

process.on('message', (message: { write?: string; burst?: { prefix: string; count: number; perSecond: number }; count?: string; members?: boolean; stop?: boolean }) => {
  if ((message as { health?: boolean }).health) {
    const health = mesh.health();
    send({ health: { sync: health.sync, broadcast: health.broadcast, store: { applied: health.store.applied, duplicates: health.store.duplicates } } });
  } else if (message.members) {
    send({ members: mesh.members().filter((m) => m.state === 'alive').length });
  } else if (message.write) {
    const at = now();
    mesh.write((tx) => tx.upsert(spritesTable, row(message.write!)));
    send({ wrote: message.write, at });
  } else if (message.burst) {
    const { prefix, count, perSecond } = message.burst;
    let i = 0;
    const timer = setInterval(() => {
      mesh.write((tx) => tx.upsert(spritesTable, row(`${prefix}-${i}`)));
      if (++i >= count) {
        clearInterval(timer);
        send({ burstDone: prefix });
      }
    }, 1000 / perSecond);
  } else if (message.count !== undefined) {
    send({ count: message.count, n: mesh.store.all(spritesTable).filter((r) => r.name.startsWith(message.count!)).length });
  } else if (message.stop) {
    void mesh.stop().then(() => rm(dir, { recursive: true, force: true })).then(() => process.exit(0));
  }
});
send({ ready: true, addr: mesh.addresses()[0], id: mesh.peerId, swarmKey: join(dir, 'swarm.key') });

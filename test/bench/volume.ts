/**
 * Volume benchmark: fio on an object-storage volume against raw ext4 on a local loop file in the
 * same run (sequential write and read, 4 KiB random read and write at queue depth 32), checkpoint
 * time with 10 MiB vs 1 GiB written, restore, clone, the first read on a fresh data dir (cold
 * cache) and object-store requests per GiB written.
 *
 *   node test/bench/volume.ts [--store file|s3] [--data-mib 1024] [--runtime 10] [--size-gib 100] [--mode strict|relaxed] [--unit-mib N]
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { StorageDaemon } from '../../vm/storage/daemon/client.ts';
import type { StoreCounters } from '../../vm/storage/store/counting.ts';
import { ObjectVolumeStore, type ObjectVolume } from '../../vm/storage/volume.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1]! : fallback;
};
const STORE = option('store', 'file') as 'file' | 's3';
const DATA_MIB = Number(option('data-mib', '1024'));
const RUNTIME = Number(option('runtime', '10'));
const SIZE = Number(option('size-gib', '100')) * 1024 ** 3;
const MODE = option('mode', 'strict') as 'strict' | 'relaxed';
const UNIT_MIB = args.includes('--unit-mib') ? Number(option('unit-mib', '')) : undefined;

function sh(file: string, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, argv, { maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${argv.join(' ')}: ${String(stderr).trim() || error.message}`));
      else resolve(String(stdout));
    });
  });
}

interface FioResult {
  mibps: number;
  iops: number;
  seconds: number;
}

async function fio(dir: string, spec: string[]): Promise<FioResult> {
  const started = performance.now();
  const out = JSON.parse(await sh('fio', ['--name=bench', `--directory=${dir}`, '--output-format=json', '--ioengine=libaio', '--direct=1', ...spec]));
  const job = out.jobs[0];
  const bw = job.read.bw + job.write.bw;
  return { mibps: Math.round(bw / 1024), iops: Math.round(job.read.iops + job.write.iops), seconds: (performance.now() - started) / 1000 };
}

async function dropCaches(): Promise<void> {
  await sh('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3');
}

const WORKLOADS: Record<string, string[]> = {
  'seq write 1M qd8 (+fsync)': ['--rw=write', '--bs=1M', `--size=${DATA_MIB}M`, '--iodepth=8', '--end_fsync=1', '--filename=seq'],
  'seq read 1M qd8': ['--rw=read', '--bs=1M', `--size=${DATA_MIB}M`, '--iodepth=8', '--filename=seq'],
  'rand read 4k qd32': ['--rw=randread', '--bs=4k', `--size=${DATA_MIB}M`, '--iodepth=32', `--runtime=${RUNTIME}`, '--time_based', '--filename=seq'],
  'rand write 4k qd32 (+fsync)': ['--rw=randwrite', '--bs=4k', `--size=${DATA_MIB}M`, '--iodepth=32', `--runtime=${RUNTIME}`, '--time_based', '--end_fsync=1', '--filename=seq'],
};

async function runWorkloads(dir: string, label: string): Promise<Record<string, FioResult>> {
  const results: Record<string, FioResult> = {};
  for (const [name, spec] of Object.entries(WORKLOADS)) {
    if (name.includes('read')) await dropCaches();
    results[name] = await fio(dir, spec);
    console.error(`${label} ${name}: ${results[name]!.mibps} MiB/s, ${results[name]!.iops} IOPS`);
  }
  return results;
}

async function raw(root: string): Promise<Record<string, FioResult>> {
  const image = join(root, 'raw.img');
  const target = join(root, 'raw');
  await mkdir(target, { recursive: true });
  await sh('truncate', ['-s', String(SIZE), image]);
  await sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', image]);
  const loop = (await sh('losetup', ['--direct-io=on', '--find', '--show', image])).trim();
  try {
    await sh('mount', ['-o', 'noatime', loop, target]);
    try {
      return await runWorkloads(target, 'raw');
    } finally {
      await sh('umount', [target]);
    }
  } finally {
    await sh('losetup', ['-d', loop]);
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await fn();
  return [value, Math.round((performance.now() - started) * 10) / 10];
}

async function storeUrl(root: string): Promise<{ url: string; stop: () => Promise<void> }> {
  if (STORE === 'file') return { url: `file://${join(root, 'store')}`, stop: async () => undefined };
  process.env.AWS_ACCESS_KEY_ID ??= 'bench';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
  const { startFauxqs } = await import('fauxqs');
  const server = await startFauxqs({ port: 0, host: '127.0.0.1', logger: false });
  server.createBucket('bench');
  return { url: `s3://bench/volumes?endpoint=http://127.0.0.1:${server.port}`, stop: () => server.stop() };
}

const root = await mkdtemp(join(tmpdir(), 'volume-bench-'));
const daemons: StorageDaemon[] = [];
const store = await storeUrl(root);
const mounted: ObjectVolume[] = [];
try {
  const device = { mode: MODE };
  const daemon = await StorageDaemon.start({ dataDir: join(root, 'peer1'), objectStore: store.url, device, ...(UNIT_MIB ? { unitSize: UNIT_MIB * 1024 * 1024 } : {}) });
  daemons.push(daemon);
  const volumes = new ObjectVolumeStore(daemon);
  const counters = async (): Promise<StoreCounters> => (await volumes.stats()).store;

  const rawResults = await raw(root);

  const [volume, createMs] = await timed(() => volumes.createEmpty('bench', SIZE));
  const mnt = join(root, 'mnt');
  const [, mountMs] = await timed(() => volume.mount(mnt));
  mounted.push(volume);
  const before = await counters();
  const volumeResults: Record<string, FioResult> = {};
  for (const [name, spec] of Object.entries(WORKLOADS)) {
    if (name.includes('read')) await dropCaches();
    const startCounters = await counters();
    volumeResults[name] = await fio(mnt, spec);
    const delta = await counters();
    console.error(`volume ${name}: ${volumeResults[name]!.mibps} MiB/s, ${volumeResults[name]!.iops} IOPS, ${delta.puts - startCounters.puts} PUTs, ${delta.gets - startCounters.gets} GETs`);
    if (name.startsWith('seq write')) Object.assign(volumeResults[name]!, { puts: delta.puts - before.puts, gets: delta.gets - before.gets, bytesOut: delta.bytesOut - before.bytesOut });
  }
  const seqWrite = volumeResults['seq write 1M qd8 (+fsync)'] as FioResult & { puts: number; bytesOut: number };
  const putsPerGiB = Math.round(seqWrite.puts / (DATA_MIB / 1024));

  // Checkpoints with little and much data written: the data is made durable first (sync), so
  // the checkpoint itself is what is measured (freeze, flush of what is left, map copy, thaw).
  const [small] = await timed(() => volumes.createEmpty('cp-small', SIZE));
  await small.mount(join(root, 'cp-small'));
  mounted.push(small);
  await sh('dd', ['if=/dev/urandom', `of=${join(root, 'cp-small', 'data')}`, 'bs=1M', 'count=10', 'conv=fsync', 'status=none']);
  const checkpointSmall: number[] = [];
  for (let i = 0; i < 5; i++) checkpointSmall.push((await timed(() => small.checkpoint(`small ${i}`)))[1]);
  const checkpointLarge: number[] = [];
  for (let i = 0; i < 5; i++) checkpointLarge.push((await timed(() => volume.checkpoint(`large ${i}`)))[1]);
  const units = (await volume.checkpoints()).at(-1)!.units;

  const [, cloneMs] = await timed(() => volume.clone('bench-clone'));
  await volume.unmount();
  mounted.splice(mounted.indexOf(volume), 1);
  const [, restoreMs] = await timed(() => volume.restore('v0'));
  const [, remountMs] = await timed(() => volume.mount(mnt));
  mounted.push(volume);
  await volume.unmount();
  mounted.splice(mounted.indexOf(volume), 1);
  await small.unmount();
  mounted.splice(mounted.indexOf(small), 1);
  await daemon.stop();

  // A peer that never saw the volume: restore from the store, then read cold.
  const fresh = await StorageDaemon.start({ dataDir: join(root, 'peer2'), objectStore: store.url, device });
  daemons.push(fresh);
  const restored = new ObjectVolumeStore(fresh).open('bench');
  const [, coldMountMs] = await timed(() => restored.mount(join(root, 'cold')));
  mounted.push(restored);
  await dropCaches();
  const [, firstByteMs] = await timed(() => sh('dd', [`if=${join(root, 'cold', 'seq')}`, 'of=/dev/null', 'bs=4k', 'count=1', 'iflag=direct', 'status=none']));
  await dropCaches();
  const cold = await fio(join(root, 'cold'), WORKLOADS['seq read 1M qd8']!);
  const coldStats = await new ObjectVolumeStore(fresh).stats();
  await restored.unmount();
  mounted.pop();

  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const rows = Object.keys(WORKLOADS).map((name) => {
    const r = rawResults[name]!;
    const v = volumeResults[name]!;
    const metric = name.startsWith('rand') ? 'iops' : 'mibps';
    return `| ${name} | ${r[metric]} ${metric === 'iops' ? 'IOPS' : 'MiB/s'} | ${v[metric]} ${metric === 'iops' ? 'IOPS' : 'MiB/s'} | ${(v[metric] / r[metric]).toFixed(2)}x |`;
  });
  console.log([
    `Volume benchmark (${STORE} store, ${MODE} mode, ${DATA_MIB} MiB data, ${SIZE / 1024 ** 3} GiB volume, io_flusher ${daemon.ioFlusher})`,
    '',
    '| workload | raw ext4 on loop file | volume | ratio |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
    '| operation | time |',
    '| --- | --- |',
    `| create empty volume + mkfs (lazy init) | ${createMs} ms |`,
    `| mount | ${mountMs} ms |`,
    `| checkpoint, 10 MiB written (median of 5) | ${median(checkpointSmall)} ms |`,
    `| checkpoint, ${DATA_MIB} MiB written (median of 5, ${units} units in the map) | ${median(checkpointLarge)} ms |`,
    `| clone | ${cloneMs} ms |`,
    `| restore to v0 (volume unmounted) | ${restoreMs} ms |`,
    `| mount after restore | ${remountMs} ms |`,
    `| mount on a fresh data dir (metadata from the store) | ${coldMountMs} ms |`,
    `| first 4 KiB read, cold cache | ${firstByteMs} ms |`,
    `| sequential read, cold cache, fresh data dir | ${cold.mibps} MiB/s (${coldStats.store.gets} GETs) |`,
    `| object-store requests per GiB written (seq write) | ${putsPerGiB} PUTs |`,
  ].join('\n'));
} finally {
  for (const volume of mounted) await volume.unmount().catch(() => undefined);
  for (const daemon of daemons) await daemon.stop().catch(() => daemon.kill());
  await store.stop();
  await sh('umount', ['-l', join(root, 'raw')]).catch(() => undefined);
  await rm(root, { recursive: true, force: true });
}

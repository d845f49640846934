import { performance } from 'node:perf_hooks';
import { eventually, removeDataDir, startPeer } from '../helpers/peer.ts';
for (const args of [['--egress', 'off'], []]) {
  const peer = await startPeer({ poolDepth: 1, args });
  const times: number[] = [];
  for (let i = 0; i < 12; i++) {
    await eventually(async () => (await peer.api('GET', '/v1/pool')).body.ready >= 1, 120_000, 'pool');
    await new Promise((r) => setTimeout(r, 1500));
    const t = performance.now();
    const res = await peer.api('POST', '/v1/sprites', { name: `p${i}` });
    times.push(performance.now() - t);
    if (res.status !== 201) throw new Error(JSON.stringify(res.body));
    await peer.api('DELETE', `/v1/sprites/p${i}`);
  }
  times.sort((a, b) => a - b);
  console.log(args.join(' ') || 'egress on', times.map((x) => x.toFixed(0)).join(' '));
  await peer.stop();
  await removeDataDir(peer.dataDir);
}

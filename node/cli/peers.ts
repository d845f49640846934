// `sprite peer list` and `sprite peer status`: the mesh as the peer the CLI talks to sees it.
import type { Command } from './command.ts';
import { JSON_FLAG, print } from './command.ts';
import { seg } from './client.ts';
import { json, table, time } from './format.ts';

interface PeerView {
  id: string;
  state: string;
  self: boolean;
  api: string;
  pool_target: number;
  pool_ready: number;
  load: number;
  capacity: number;
  drain: 'draining' | 'drained' | null;
  heartbeat: string;
}

/** How often `peer drain` looks at the progress. */
const DRAIN_POLL_MS = 500;

interface MeshHealthView {
  peer: string;
  addrs: string[];
  connections: number;
  members: { id: string; state: string }[];
  heads: Record<string, number>;
  gaps: Record<string, [number, number][]>;
  sync: { last_sync: Record<string, string>; pulls: number; failures: number };
  rejected_messages: number;
}

/** Commands under `sprite peer` that read the mesh. */
export const peerCommands: readonly Command[] = [
  {
    words: ['peer', 'list'],
    usage: '[--json]',
    summary: 'list the peers of the mesh and their state',
    spec: { flags: JSON_FLAG },
    required: [],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ peers: PeerView[] }>('GET', '/v1/peers');
      if (ctx.args.bool('json')) {
        await print(ctx.io, json(answer));
        return 0;
      }
      const rows = (answer?.peers ?? []).map((p) => [
        p.self ? `${p.id} *` : p.id, p.drain ? `${p.state}, ${p.drain}` : p.state, p.api, `${p.pool_ready}/${p.pool_target}`, `${p.load}/${p.capacity}`, time(p.heartbeat),
      ]);
      await print(ctx.io, table(['PEER', 'STATE', 'API', 'POOL', 'LOAD', 'HEARTBEAT'], rows));
      return 0;
    },
  },
  {
    words: ['peer', 'drain'],
    usage: '[PEER] [--no-wait]',
    summary: 'stop a peer (default: this one) taking sprites and move its sprites to other peers; waits until done',
    spec: { flags: { 'no-wait': { kind: 'boolean' } } },
    required: [],
    optional: ['PEER'],
    run: async (ctx) => {
      const client = ctx.client();
      const started = await client.json<{ peer: string }>('POST', `/v1/peers/${seg(ctx.positionals[0] ?? 'self')}/drain`);
      const peer = started!.peer;
      await print(ctx.io, `draining ${peer}\n`);
      if (ctx.args.bool('no-wait')) return 0;
      let last = -1;
      for (;;) {
        const answer = await client.json<{ peers: PeerView[] }>('GET', '/v1/peers');
        const view = answer?.peers.find((p) => p.id === peer);
        if (view?.drain === 'drained') break;
        if (view && view.load !== last) {
          last = view.load;
          await print(ctx.io, `${view.load} sprites left on ${peer}\n`);
        }
        await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
      }
      await print(ctx.io, `drained ${peer}\n`);
      return 0;
    },
  },
  {
    words: ['peer', 'token', 'rotate'],
    usage: '[PEER]',
    summary: "replace a peer's own admin token (default: this one's): prints the new one once and revokes the old",
    spec: { flags: {} },
    required: [],
    optional: ['PEER'],
    run: async (ctx) => {
      const answer = await ctx.client().json<{ peer: string; token: string }>('POST', `/v1/peers/${seg(ctx.positionals[0] ?? 'self')}/token`);
      await print(ctx.io, `new admin token of peer ${answer!.peer} (the old one is revoked; also written to its data dir's token file): ${answer!.token}\n`);
      return 0;
    },
  },
  {
    words: ['peer', 'status'],
    usage: '[--json]',
    summary: "this peer's view of the mesh: members, versions, gaps, sync",
    spec: { flags: JSON_FLAG },
    required: [],
    run: async (ctx) => {
      const health = await ctx.client().json<MeshHealthView>('GET', '/v1/mesh/health');
      if (ctx.args.bool('json') || health === undefined) {
        await print(ctx.io, json(health));
        return 0;
      }
      const alive = health.members.filter((m) => m.state === 'alive').length;
      const gaps = Object.values(health.gaps).reduce((sum, ranges) => sum + ranges.length, 0);
      const lines = [
        `peer         ${health.peer}`,
        ...health.addrs.map((addr) => `address      ${addr}`),
        `members      ${alive} alive of ${health.members.length}`,
        `connections  ${health.connections}`,
        `sites        ${Object.keys(health.heads).length}`,
        `gaps         ${gaps}`,
        `syncs        ${health.sync.pulls} ok, ${health.sync.failures} failed`,
        `rejected     ${health.rejected_messages} messages`,
        '',
      ];
      await print(ctx.io, lines.join('\n'));
      return 0;
    },
  },
];

// `sprite peer list` and `sprite peer status`: the mesh as the peer the CLI talks to sees it.
import type { Command } from './command.ts';
import { JSON_FLAG, print } from './command.ts';
import { json, table, time } from './format.ts';

interface PeerView {
  id: string;
  state: string;
  self: boolean;
  api: string;
  poolTarget: number;
  poolReady: number;
  load: number;
  capacity: number;
  heartbeat: string;
}

interface MeshHealthView {
  peer: string;
  addrs: string[];
  connections: number;
  members: { id: string; state: string }[];
  heads: Record<string, number>;
  gaps: Record<string, [number, number][]>;
  sync: { lastSync: Record<string, string>; pulls: number; failures: number };
  rejectedMessages: number;
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
        p.self ? `${p.id} *` : p.id, p.state, p.api, `${p.poolReady}/${p.poolTarget}`, `${p.load}/${p.capacity}`, time(p.heartbeat),
      ]);
      await print(ctx.io, table(['PEER', 'STATE', 'API', 'POOL', 'LOAD', 'HEARTBEAT'], rows));
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
        `rejected     ${health.rejectedMessages} messages`,
        '',
      ];
      await print(ctx.io, lines.join('\n'));
      return 0;
    },
  },
];

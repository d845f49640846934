/**
 * The policy resolver's added DNS latency: the same A query asked straight of a loopback upstream
 * (test/helpers/dns-server.ts) and through the resolver (node/egress/resolver.ts) with the answer
 * cached, alternating round by round; plus the uncached path (every name new, so forwarded). One
 * process holds client, resolver and upstream, so both paths pay the same event-loop costs.
 *
 *   node test/bench/dns.ts [--queries 5000] [--rounds 4]
 */
import { buildQuery, TYPE } from '../../node/egress/dns-wire.ts';
import { PolicyResolver } from '../../node/egress/resolver.ts';
import { DnsClient, startDnsServer } from '../helpers/dns-server.ts';
import { option, percentile } from './stats.ts';

/** p50 / p99 / max in ms to the microsecond (stats' summary rounds to 0.1 ms, too coarse here). */
function summary(values: number[]): { n: number; p50: number; p99: number; max: number } {
  const us = (x: number): number => Math.round(x * 1000) / 1000;
  return { n: values.length, p50: us(percentile(values, 50)), p99: us(percentile(values, 99)), max: us(Math.max(...values)) };
}

export interface DnsLatency {
  /** Milliseconds per query: straight to the upstream, through the resolver cached, and through it uncached. */
  direct: ReturnType<typeof summary>;
  cached: ReturnType<typeof summary>;
  forwarded: ReturnType<typeof summary>;
  /** cached p50 - direct p50, in ms. */
  addedP50: number;
}

/** Measures `queries` queries per path per round over `rounds` rounds. */
export async function measureDnsLatency(queries = 5000, rounds = 4): Promise<DnsLatency> {
  const fresh = Array.from({ length: queries * rounds }, (_, i) => `n${i}.example.com`);
  const records: Record<string, { a: string }[]> = { 'www.example.com': [{ a: '192.0.2.1' }] };
  for (const name of fresh) records[name] = [{ a: '192.0.2.2' }];
  const upstream = await startDnsServer({ records });
  const resolver = await PolicyResolver.start({
    listen: { address: '127.0.0.1', port: 0 },
    upstream: { address: upstream.address, port: upstream.port },
    policyFor: () => ({ rules: [{ domain: '*.example.com', action: 'allow' }, { domain: '*', action: 'deny' }] }),
    onAllowed: () => {},
  });
  const client = await DnsClient.open('127.0.0.1');
  const times = { direct: [] as number[], cached: [] as number[], forwarded: [] as number[] };
  let id = 0;
  const time = async (to: { address: string; port: number }, name: string): Promise<number> => {
    const query = buildQuery(name, TYPE.A, (id = (id + 1) & 0xffff));
    const start = process.hrtime.bigint();
    if (!(await client.ask(to, query))) throw new Error(`no answer for ${name}`);
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  try {
    for (let i = 0; i < 500; i++) await time(resolver.address, 'www.example.com'); // warm up both paths and fill the cache
    for (let i = 0; i < 500; i++) await time(upstream, 'www.example.com');
    let next = 0;
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < queries; i++) times.direct.push(await time(upstream, 'www.example.com'));
      for (let i = 0; i < queries; i++) times.cached.push(await time(resolver.address, 'www.example.com'));
      for (let i = 0; i < queries; i++) times.forwarded.push(await time(resolver.address, fresh[next++]!));
    }
  } finally {
    client.close();
    await resolver.close();
    await upstream.close();
  }
  const direct = summary(times.direct);
  const cached = summary(times.cached);
  return { direct, cached, forwarded: summary(times.forwarded), addedP50: Math.round((cached.p50 - direct.p50) * 1000) / 1000 };
}

if (import.meta.main) {
  const result = await measureDnsLatency(option('queries', 5000), option('rounds', 4));
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

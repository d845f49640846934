// `sprite peer start`: parses the peer's flags and hands over to ../peer.ts.
import type { Command } from './command.ts';
import { CliError, UsageError } from './errors.ts';

/** Pool fallback values runPeer accepts. */
const FALLBACKS = ['cold', 'fail'] as const;
/** Images the peer can boot. */
const IMAGES = ['busybox'] as const;

/** The `sprite peer start` command. */
export const peerStartCommand: Command = {
  words: ['peer', 'start'],
  usage: '[--data-dir DIR] [--api ADDR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--swarm-key FILE] [--suspect-after MS --down-after MS] [--object-store URL] [--pool-depth N] [--pool-fallback cold|fail] [--image busybox] [--proxy-http ADDR] [--proxy-https ADDR] [--domain DOMAIN] [--tls-cert FILE --tls-key FILE]',
  summary: 'run a peer in the foreground',
  spec: {
    flags: {
      'data-dir': { kind: 'string' },
      api: { kind: 'string' },
      'pool-depth': { kind: 'string' },
      'pool-fallback': { kind: 'string' },
      image: { kind: 'string' },
      listen: { kind: 'list' },
      bootstrap: { kind: 'list' },
      'swarm-key': { kind: 'string' },
      'suspect-after': { kind: 'string' },
      'down-after': { kind: 'string' },
      'object-store': { kind: 'string' },
      'proxy-http': { kind: 'string' },
      'proxy-https': { kind: 'string' },
      domain: { kind: 'string' },
      'tls-cert': { kind: 'string' },
      'tls-key': { kind: 'string' },
    },
  },
  required: [],
  keepAlive: true,
  run: async (ctx) => {
    const depth = ctx.args.string('pool-depth');
    if (depth !== undefined && !/^\d+$/.test(depth)) {
      throw new UsageError(`--pool-depth must be a whole number, got '${depth}'`);
    }
    const fallback = ctx.args.string('pool-fallback');
    if (fallback !== undefined && !isOneOf(FALLBACKS, fallback)) {
      throw new UsageError(`--pool-fallback must be cold or fail, got '${fallback}'`);
    }
    const [suspectAfterMs, downAfterMs] = (['suspect-after', 'down-after'] as const).map((flag) => {
      const value = ctx.args.string(flag);
      if (value !== undefined && !/^[1-9]\d*$/.test(value)) throw new UsageError(`--${flag} must be a whole number of milliseconds, got '${value}'`);
      return value === undefined ? undefined : Number(value);
    });
    const image = ctx.args.string('image');
    if (image !== undefined && !isOneOf(IMAGES, image)) {
      throw new UsageError(`--image must be ${IMAGES.join(' or ')}, got '${image}'`);
    }
    // Loaded lazily: client commands should not pay for (or depend on) the peer's modules.
    const { runPeer } = await import('../peer.ts').catch((err: unknown) => {
      throw new CliError('ERR_PEER_LOAD', `cannot load the peer: ${(err as Error).message}`, { cause: err });
    });
    await runPeer({
      dataDir: ctx.args.string('data-dir'),
      api: ctx.args.string('api'),
      poolDepth: depth === undefined ? undefined : Number(depth),
      poolFallback: fallback,
      listen: ctx.args.list('listen'),
      bootstrap: ctx.args.list('bootstrap'),
      swarmKeyFile: ctx.args.string('swarm-key'),
      suspectAfterMs,
      downAfterMs,
      objectStore: ctx.args.string('object-store'),
      proxyHttp: ctx.args.string('proxy-http'),
      proxyHttps: ctx.args.string('proxy-https'),
      domain: ctx.args.string('domain'),
      tlsCert: ctx.args.string('tls-cert'),
      tlsKey: ctx.args.string('tls-key'),
    });
    return 0;
  },
};

/** Narrows a string to one of a fixed list. */
function isOneOf<T extends string>(list: readonly T[], value: string): value is T {
  return (list as readonly string[]).includes(value);
}

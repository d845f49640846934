// `sprite peer start`: parses the peer's flags and hands over to ../peer.ts.
import type { Command } from './command.ts';
import { CliError, UsageError } from './errors.ts';

/** Pool fallback values runPeer accepts. */
const FALLBACKS = ['cold', 'fail'] as const;
/** Base images the peer can boot its warm sprites from. */
const IMAGES = ['debian', 'busybox'] as const;

/** The `sprite peer start` command. */
export const peerStartCommand: Command = {
  words: ['peer', 'start'],
  usage: '[--data-dir DIR] [--api ADDR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--swarm-key FILE] [--object-store URL] [--image-max-bytes N] [--pool-depth N] [--pool-fallback cold|fail] [--suspect-after-ms MS] [--down-after-ms MS] [--image debian|busybox] [--debian-suite SUITE] [--debian-mirror URL] [--proxy-http ADDR] [--proxy-https ADDR] [--domain DOMAIN] [--tls-cert FILE --tls-key FILE] [--warm-sleep-after SECONDS] [--cold-sleep-after SECONDS]',
  summary: 'run a peer in the foreground',
  spec: {
    flags: {
      'data-dir': { kind: 'string' },
      api: { kind: 'string' },
      'pool-depth': { kind: 'string' },
      'pool-fallback': { kind: 'string' },
      'suspect-after-ms': { kind: 'string' },
      'down-after-ms': { kind: 'string' },
      image: { kind: 'string' },
      'debian-suite': { kind: 'string' },
      'debian-mirror': { kind: 'string' },
      listen: { kind: 'list' },
      bootstrap: { kind: 'list' },
      'swarm-key': { kind: 'string' },
      'object-store': { kind: 'string' },
      'image-max-bytes': { kind: 'string' },
      'proxy-http': { kind: 'string' },
      'proxy-https': { kind: 'string' },
      domain: { kind: 'string' },
      'tls-cert': { kind: 'string' },
      'tls-key': { kind: 'string' },
      'warm-sleep-after': { kind: 'string' },
      'cold-sleep-after': { kind: 'string' },
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
    const [suspectAfterMs, downAfterMs] = ['suspect-after-ms', 'down-after-ms'].map((flag) => {
      const value = ctx.args.string(flag);
      if (value !== undefined && !/^[1-9]\d*$/.test(value)) throw new UsageError(`--${flag} must be a whole number of milliseconds, got '${value}'`);
      return value === undefined ? undefined : Number(value);
    });
    const imageMax = ctx.args.string('image-max-bytes');
    if (imageMax !== undefined && !/^\d+$/.test(imageMax)) throw new UsageError(`--image-max-bytes must be a whole number, got '${imageMax}'`);
    const image = ctx.args.string('image');
    if (image !== undefined && !isOneOf(IMAGES, image)) {
      throw new UsageError(`--image must be ${IMAGES.join(' or ')}, got '${image}'`);
    }
    const warmSleepAfterMs = seconds(ctx.args.string('warm-sleep-after'), 'warm-sleep-after');
    const coldSleepAfterMs = seconds(ctx.args.string('cold-sleep-after'), 'cold-sleep-after');
    // Loaded lazily: client commands should not pay for (or depend on) the peer's modules.
    const { runPeer } = await import('../peer.ts').catch((err: unknown) => {
      throw new CliError('ERR_PEER_LOAD', `cannot load the peer: ${(err as Error).message}`, { cause: err });
    });
    await runPeer({
      dataDir: ctx.args.string('data-dir'),
      api: ctx.args.string('api'),
      poolDepth: depth === undefined ? undefined : Number(depth),
      poolFallback: fallback,
      suspectAfterMs,
      downAfterMs,
      listen: ctx.args.list('listen'),
      bootstrap: ctx.args.list('bootstrap'),
      swarmKeyFile: ctx.args.string('swarm-key'),
      objectStore: ctx.args.string('object-store'),
      imageMaxBytes: imageMax === undefined ? undefined : Number(imageMax),
      proxyHttp: ctx.args.string('proxy-http'),
      proxyHttps: ctx.args.string('proxy-https'),
      domain: ctx.args.string('domain'),
      tlsCert: ctx.args.string('tls-cert'),
      tlsKey: ctx.args.string('tls-key'),
      warmSleepAfterMs,
      coldSleepAfterMs,
      baseImage: image,
      debianSuite: ctx.args.string('debian-suite'),
      debianMirror: ctx.args.string('debian-mirror'),
    });
    return 0;
  },
};

/** A duration flag in seconds (decimals allowed) as whole milliseconds. */
function seconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(text)) throw new UsageError(`--${flag} must be a number of seconds, got '${text}'`);
  return Math.round(Number(text) * 1000);
}

/** Narrows a string to one of a fixed list. */
function isOneOf<T extends string>(list: readonly T[], value: string): value is T {
  return (list as readonly string[]).includes(value);
}

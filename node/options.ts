// The peer's options, once: each entry gives the flag, how its value is read and checked, the
// default (taken from the unit that owns it), and one line of doc. From this table come the
// `sprite peer start` flags and help, PeerOptions, the checks of buildConfig (./config.ts) and the
// README's configuration table (./options-doc.ts). It imports the units' defaults files and two
// small leaf modules (the domain's and the Debian suite's rules), not their index.ts, so that every
// CLI command (which lists these flags) does not load libp2p, undici and the storage engine.
import { resolve } from 'node:path';
import { MESH_DEFAULTS } from '../gossip/defaults.ts';
import { PROXY_DEFAULTS } from '../proxy/defaults.ts';
import { validDomain } from '../proxy/host.ts';
import { DEBIAN_SUITE } from '../vm/debootstrap.ts';
import { VM_DEFAULTS } from '../vm/defaults.ts';
import { contains, parseCidr, parseIpv4 } from '../vm/net/cidr.ts';
import { PRIVATE } from '../vm/net/ruleset.ts';
import { DEVICE_DEFAULTS, VOLUMES_DEFAULTS } from '../vm/storage/defaults.ts';
import { defaultDataDir, PEER_DEFAULTS } from './defaults.ts';
import { EGRESS_DEFAULTS } from './egress/policy-match.ts';
import { address, bytes, decimal, integer, list, milliseconds, multiaddrs, oneOf, path, rate, seconds, text, type Kind } from './option-kinds.ts';

/** The part of the peer an option configures; help and the README group options by it. */
export type Section = 'peer' | 'pool' | 'mesh' | 'storage' | 'proxy' | 'sleep' | 'sprite' | 'quota' | 'egress';

/** One option: its flag, kind, default and doc. */
export interface PeerOption<In, Out> {
  /** Section it belongs to. */
  readonly section: Section;
  /** The long flag, without dashes. */
  readonly flag: string;
  /** How the value is read from the flag, checked, and shown. */
  readonly kind: Kind<In, Out>;
  /** Names the option in error messages. */
  readonly label: string;
  /** The default as the config holds it; a function when it depends on the environment; undefined for none (or derived, see defaultText). */
  readonly default: Out | (() => Out) | undefined;
  /** The default as docs show it, when the value alone would not say it (markdown). */
  readonly defaultText?: string;
  /** One line for help and the README (markdown). */
  readonly doc: string;
  /** The flag's placeholder, when the kind's would say less. */
  readonly metavar?: string;
  /** The message for a bad value, when it says more than the kind's (one rule over several options, say). */
  readonly error?: (value: unknown) => string;
}

/** Options keyed as callers pass them; a nested object is a group (`limits`). */
export interface OptionTable {
  readonly [key: string]: PeerOption<unknown, unknown> | OptionTable;
}

/** What callers pass for a table: every key optional, groups as nested objects. */
type OptionsOf<T> = { [K in keyof T]?: T[K] extends PeerOption<infer In, unknown> ? In : OptionsOf<T[K]> };

/** What buildConfig reads for a table: every option resolved; undefined only where the default is none. */
type ValuesOf<T> = {
  -readonly [K in keyof T]: T[K] extends PeerOption<unknown, infer Out> & { default: infer D } ? (undefined extends D ? Out | undefined : Out) : ValuesOf<T[K]>;
};

/** Declares one option (infers its types from the kind and default). */
function option<In, Out, D extends Out | (() => Out) | undefined>(spec: PeerOption<In, Out> & { default: D }): PeerOption<In, Out> & { default: D } {
  return spec;
}

/** Both membership timeouts share one rule and its message. */
const MEMBERSHIP_RULE = 'membership timeouts must be whole milliseconds with 0 < suspect < down';
/** Both sleep times share one rule and its message. */
const SLEEP_RULE = 'sleep times must be whole milliseconds with 100 <= warm < cold';
/** A CIDR inside one of the private ranges. */
function privateCidr(text: string): boolean {
  const cidr = parseCidr(text);
  return cidr !== undefined && PRIVATE.some((range) => { const outer = parseCidr(range)!; return cidr.prefix >= outer.prefix && contains(outer, cidr.base); });
}

/** `auto`, or an IPv4 CIDR of 14 to 1022 sprites. */
function egressRange(text: string): boolean {
  const cidr = parseCidr(text);
  return text === 'auto' || (cidr !== undefined && cidr.prefix >= 22 && cidr.prefix <= 28 && text.includes('/'));
}

/** The smallest memory limit a sprite can boot with. */
const MIN_SPRITE_MEMORY = 16 * 1024 ** 2;

/** Every option of the peer, in the order help and the README list them. */
export const PEER_OPTIONS = {
  dataDir: option({
    section: 'peer', flag: 'data-dir', kind: path('DIR'), label: 'data dir', default: () => resolve(defaultDataDir()),
    defaultText: `\`$SPRITE_DATA_DIR\`, else \`~/${PEER_DEFAULTS.dataDirName}\``,
    doc: "token, peer and swarm keys, the mesh store (`mesh.db`), base image, volumes, sprite directories, sprite-init's compile cache",
  }),
  api: option({ section: 'peer', flag: 'api', kind: address(), label: 'API address', default: PEER_DEFAULTS.api, doc: 'API listen address; port 0 picks one' }),
  poolDepth: option({ section: 'pool', flag: 'pool-depth', kind: integer(0, 64), label: 'pool depth', default: PEER_DEFAULTS.pool.depth, doc: 'warm sprites kept ready' }),
  poolFallback: option({
    section: 'pool', flag: 'pool-fallback', kind: oneOf(['cold', 'fail']), label: 'pool fallback', default: PEER_DEFAULTS.pool.fallback,
    doc: 'pool empty: create inline (`cold`) or answer 503 (`fail`)',
  }),
  poolConcurrency: option({
    section: 'pool', flag: 'pool-concurrency', kind: integer(1, 8), label: 'pool concurrency', default: PEER_DEFAULTS.pool.concurrency,
    doc: 'warm sprites prepared at the same time while the pool refills',
  }),
  baseImage: option({
    section: 'pool', flag: 'image', kind: oneOf(['debian', 'busybox']), label: 'base image', default: PEER_DEFAULTS.pool.image,
    doc: 'base image of warm sprites and of creates without `--image`: `debian` (debootstrap minbase, built on first start; busybox if that fails) or `busybox`',
  }),
  debianSuite: option({
    section: 'pool', flag: 'debian-suite', kind: text('SUITE', 'a Debian suite name', (suite) => DEBIAN_SUITE.test(suite)), label: 'Debian suite',
    default: VM_DEFAULTS.debian.suite, doc: 'the Debian suite the base image is built from', error: (suite) => `${String(suite)} is not a Debian suite name`,
  }),
  debianMirror: option({
    section: 'pool', flag: 'debian-mirror', kind: text('URL', 'an http(s) URL', (url) => /^https?:\/\/[^\s/]+/.test(url)), label: 'Debian mirror',
    default: VM_DEFAULTS.debian.mirror, doc: 'the mirror the Debian base image is fetched from',
  }),
  listen: option({
    section: 'mesh', flag: 'listen', kind: multiaddrs(), label: 'listen addresses', default: [...PEER_DEFAULTS.listen],
    doc: `libp2p listen address; use \`${PEER_DEFAULTS.listen[0].replace('127.0.0.1', '0.0.0.0')}\` across machines`,
  }),
  bootstrap: option({
    section: 'mesh', flag: 'bootstrap', kind: multiaddrs(), label: 'bootstrap addresses', default: [], defaultText: 'none',
    doc: 'a peer of the mesh to join (one live one is enough)',
  }),
  swarmKeyFile: option({
    section: 'mesh', flag: 'swarm-key', kind: path('FILE'), label: 'swarm key file', default: undefined, defaultText: '`<data-dir>/swarm.key`, made on first start',
    doc: "the mesh's private-network key; only holders can connect",
  }),
  suspectAfterMs: option({
    section: 'mesh', flag: 'suspect-after-ms', kind: milliseconds(1), label: 'suspect time', default: MESH_DEFAULTS.membership.suspectAfterMs, error: () => MEMBERSHIP_RULE,
    doc: `a peer silent this long is suspect (pinged); heartbeats go out every min(${MESH_DEFAULTS.heartbeatMs / 1000} s, suspect/3)`,
  }),
  downAfterMs: option({
    section: 'mesh', flag: 'down-after-ms', kind: milliseconds(1), label: 'down time', default: MESH_DEFAULTS.membership.downAfterMs, error: () => MEMBERSHIP_RULE,
    doc: 'a peer silent this long is down: its sprites move to the next peer that gets a request for them',
  }),
  syncIntervalMs: option({
    section: 'mesh', flag: 'sync-interval-ms', kind: milliseconds(100), label: 'sync interval', default: MESH_DEFAULTS.syncIntervalMs,
    doc: 'mean time between anti-entropy rounds with a random peer (jittered ±50 %)',
  }),
  meshConnections: option({
    section: 'mesh', flag: 'mesh-connections', kind: integer(1, 64), label: 'mesh connections', default: MESH_DEFAULTS.connections,
    doc: 'connections kept to random live peers, which gossip goes through',
  }),
  objectStore: option({
    section: 'storage', flag: 'object-store', label: 'object store', default: undefined, defaultText: '`file://<data-dir>/objects`',
    kind: text('URL', 'file:///absolute/dir or s3://bucket[/prefix][?endpoint=URL]', (url) => /^(file:\/\/\/|s3:\/\/[a-z0-9.-]+)/.test(url)),
    doc: 'where sprite disks live: `file:///DIR` or `s3://bucket/prefix?endpoint=URL` (AWS credentials from the environment)',
  }),
  imageMaxBytes: option({
    section: 'storage', flag: 'image-max-bytes', kind: bytes(1024 ** 2), label: 'image size limit', default: VM_DEFAULTS.imageMaxBytes,
    doc: 'largest image source (files of a directory or tarball, and the tarball itself) `sprite image build` accepts',
  }),
  cacheBytes: option({
    section: 'storage', flag: 'cache-bytes', kind: bytes(16 * VOLUMES_DEFAULTS.unitSize), label: 'cache budget', default: VOLUMES_DEFAULTS.cacheBytes,
    doc: 'local disk cache of the object store, dirty data included; least recently used data goes past 90 % of it',
  }),
  storageMode: option({
    section: 'storage', flag: 'storage-mode', kind: oneOf(['strict', 'relaxed']), label: 'storage mode', default: DEVICE_DEFAULTS.mode,
    doc: 'when a sprite\'s fsync returns: `strict` once data is in the object store, `relaxed` once on local disk (see docs/STORAGE.md)',
  }),
  softDirtyBytes: option({
    section: 'storage', flag: 'soft-dirty-bytes', kind: bytes(VOLUMES_DEFAULTS.unitSize), label: 'soft dirty limit', default: DEVICE_DEFAULTS.softDirtyBytes,
    doc: 'per disk: past this much data not yet uploaded, writes to new data are slowed',
  }),
  hardDirtyBytes: option({
    section: 'storage', flag: 'hard-dirty-bytes', kind: bytes(VOLUMES_DEFAULTS.unitSize), label: 'hard dirty limit', default: DEVICE_DEFAULTS.hardDirtyBytes,
    doc: 'per disk: past this much, writes to new data wait for uploads',
  }),
  proxyHttp: option({
    section: 'proxy', flag: 'proxy-http', kind: address(), label: 'proxy HTTP address', default: PROXY_DEFAULTS.http,
    doc: "the edge proxy's plain HTTP listener (other peers forward to it); port 0 picks one",
  }),
  proxyHttps: option({
    section: 'proxy', flag: 'proxy-https', kind: address(), label: 'proxy HTTPS address', default: PROXY_DEFAULTS.https,
    doc: "the edge proxy's HTTPS listener (HTTP/2 and HTTP/1.1)",
  }),
  domain: option({
    section: 'proxy', flag: 'domain', kind: text('DOMAIN', 'lowercase DNS labels like sprites.example.com', validDomain), label: 'domain', default: PROXY_DEFAULTS.domain,
    doc: 'sprite URLs are `NAME.<domain>`; `*.localhost` resolves to loopback with no DNS set-up; every peer of a mesh uses the same',
  }),
  tlsCert: option({
    section: 'proxy', flag: 'tls-cert', kind: path('FILE'), label: 'TLS certificate file', default: undefined, defaultText: 'none: the mesh CA',
    doc: 'a certificate for `*.<domain>` (with `--tls-key`); without them the first peer makes a mesh CA and wildcard certificate that every peer serves',
  }),
  tlsKey: option({
    section: 'proxy', flag: 'tls-key', kind: path('FILE'), label: 'TLS key file', default: undefined, defaultText: 'none', doc: 'the key of `--tls-cert`',
  }),
  warmSleepAfterMs: option({
    section: 'sleep', flag: 'warm-sleep-after', kind: seconds(100), label: 'warm sleep time', default: PEER_DEFAULTS.sleep.warmAfterMs, error: () => SLEEP_RULE,
    doc: 'a sprite with no use this long sleeps warm: frozen, memory kept, woken in milliseconds',
  }),
  coldSleepAfterMs: option({
    section: 'sleep', flag: 'cold-sleep-after', kind: seconds(100), label: 'cold sleep time', default: PEER_DEFAULTS.sleep.coldAfterMs, error: () => SLEEP_RULE,
    doc: '... and this long sleeps cold: stopped, disk unmounted, memory freed; services start again on wake',
  }),
  capacity: option({
    section: 'sprite', flag: 'capacity', kind: integer(0), label: 'capacity', default: PEER_DEFAULTS.sprite.capacity,
    doc: 'sprites this peer runs at most (awake or warm): placement sends creates to peers with room; with none, a create waits (`wait_for_capacity`) or gets 429',
  }),
  limits: {
    memoryBytes: option({
      section: 'sprite', flag: 'sprite-memory', kind: bytes(MIN_SPRITE_MEMORY), label: 'memory limit', default: VM_DEFAULTS.limits.memoryBytes,
      doc: 'memory limit of each sprite: the default, and the most a create may ask for (`config.ram_mb`)',
    }),
    cpus: option({ section: 'sprite', flag: 'sprite-cpus', kind: decimal(0, 64), label: 'cpu limit', default: VM_DEFAULTS.limits.cpus, doc: 'CPU limit of each sprite, in cores: the default, and the most a create may ask for (`config.cpus`)' }),
    pids: option({ section: 'sprite', flag: 'sprite-pids', kind: integer(16), label: 'pids limit', default: VM_DEFAULTS.limits.pids, doc: 'process limit of each sprite' }),
  },
  httpPort: option({
    section: 'sprite', flag: 'sprite-http-port', kind: integer(1, 65535, 'PORT'), label: 'sprite http port', default: PEER_DEFAULTS.sprite.httpPort,
    doc: "the port inside a sprite that its URL serves; every peer of a mesh uses the same",
  }),
  egressDefaultPolicy: option({
    section: 'sprite', flag: 'egress-default-policy', kind: oneOf(EGRESS_DEFAULTS), label: 'default network policy', default: PEER_DEFAULTS.sprite.egressDefaultPolicy,
    doc: 'the network policy a sprite created here starts with: `allow-all` (no rules), `defaults` (the preset of package and source hosts, then `*` denied) or `deny-all` (`*` denied)',
  }),
  quotas: {
    sprites: option({
      section: 'quota', flag: 'org-max-sprites', kind: integer(0), label: 'org sprite quota', default: undefined, defaultText: 'no limit',
      doc: "sprites an org may have; past it a create gets 429 `ERR_QUOTA_EXCEEDED`. Each quota is every org's default: the operator sets an org's own with `sprite org quota`; every peer of a mesh should use the same",
    }),
    running: option({
      section: 'quota', flag: 'org-max-running', kind: integer(0), label: 'org running quota', default: undefined, defaultText: 'no limit',
      doc: 'sprites of an org awake or in warm sleep at once; past it a create, a start or a wake from cold sleep gets 429',
    }),
    checkpoints: option({
      section: 'quota', flag: 'org-max-checkpoints', kind: integer(0), label: 'org checkpoint quota', default: undefined, defaultText: 'no limit',
      doc: "checkpoints of all an org's sprites together; past it a checkpoint gets 429",
    }),
    storageBytes: option({
      section: 'quota', flag: 'org-max-storage', kind: bytes(0), label: 'org storage quota', default: undefined, defaultText: 'no limit',
      doc: "bytes the disks and checkpoints of an org's sprites hold in the object store (their base image not counted); at it a create or a checkpoint gets 429",
    }),
  },
  egress: option({
    section: 'egress', flag: 'egress', kind: oneOf(['on', 'off']), label: 'egress', default: 'on',
    doc: 'sprites reach the network through a veth, masqueraded out the uplink and fenced by nftables (see docs/NETWORKING.md); `off`: loopback only',
  }),
  egressUplink: option({
    section: 'egress', flag: 'egress-uplink', kind: text('IFACE', 'a network interface name', (name) => /^[\w.:@-]{1,15}$/.test(name)), label: 'egress uplink',
    default: undefined, defaultText: "the default route's interface (none: egress off, with a warning)",
    doc: 'the only interface sprite traffic may leave through',
  }),
  egressRange: option({
    section: 'egress', flag: 'egress-range', kind: text('CIDR', '`auto` or an IPv4 CIDR from /22 to /28', egressRange), label: 'egress range', default: 'auto',
    doc: "this peer's sprite addresses; `auto` picks a /22 of 100.64.0.0/10 that no route on the host overlaps",
  }),
  egressAllowPrivate: option({
    section: 'egress', flag: 'egress-allow-private', kind: list('CIDR', 'CIDRs inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16', privateCidr), label: 'allowed private ranges',
    default: [], defaultText: 'none', doc: 'private ranges sprites may reach through the uplink, comma-separated (blocked otherwise)',
  }),
  egressRate: option({
    section: 'egress', flag: 'egress-rate', kind: rate(), label: 'egress rate', default: 1000 ** 3,
    doc: 'bandwidth limit of each sprite, in each direction (tc); `0`: unlimited',
  }),
  egressDns: option({
    section: 'egress', flag: 'egress-dns', kind: text('IP', 'an IPv4 address', (ip) => parseIpv4(ip) !== undefined), label: 'egress DNS', default: undefined,
    defaultText: 'the first nameserver of `/etc/resolv.conf`', doc: "the upstream resolver behind sprites' DNS (their resolver is their gateway)",
  }),
} as const satisfies OptionTable;

/** Options as given on the command line or by a test; anything missing takes its default. */
export type PeerOptions = OptionsOf<typeof PEER_OPTIONS>;

/** Every option resolved: what buildConfig assembles the config from. */
export type PeerValues = ValuesOf<typeof PEER_OPTIONS>;

/** A rule over several options, checked once each is valid on its own. */
interface OptionRule {
  /** Whether the options (each already valid) agree. */
  holds(values: PeerValues): boolean;
  /** The message when it does not hold. */
  error: string;
}

/** The rules that tie options together. */
const OPTION_RULES: readonly OptionRule[] = [
  { holds: (v) => v.suspectAfterMs < v.downAfterMs, error: MEMBERSHIP_RULE },
  { holds: (v) => v.warmSleepAfterMs < v.coldSleepAfterMs, error: SLEEP_RULE },
  { holds: (v) => (v.tlsCert === undefined) === (v.tlsKey === undefined), error: 'TLS certificate and key files go together: give both or neither' },
  { holds: (v) => v.softDirtyBytes <= v.hardDirtyBytes, error: 'the soft dirty limit must not be above the hard one' },
];

/** One option with its place in the table (`['limits', 'cpus']`). */
export interface ListedOption {
  /** Keys from the table's top to the option. */
  path: readonly string[];
  option: PeerOption<unknown, unknown>;
}

/** Every option in table order, groups flattened. */
export function listOptions(table: OptionTable = PEER_OPTIONS): ListedOption[] {
  return Object.entries(table).flatMap(([key, entry]) =>
    isOption(entry) ? [{ path: [key], option: entry }] : listOptions(entry).map(({ path, option }) => ({ path: [key, ...path], option })),
  );
}

/**
 * Checks options a caller passed and fills in defaults: unknown keys are rejected at every level,
 * each value is checked by its kind, then the rules over several options. Throws a message naming
 * the bad option.
 */
export function readOptions(options: PeerOptions): PeerValues {
  const values = readTable(PEER_OPTIONS, options, '') as PeerValues;
  for (const rule of OPTION_RULES) if (!rule.holds(values)) throw new Error(rule.error);
  return values;
}

/** Options from `sprite peer start` flags: `texts(flag)` gives every text given for a flag, in order. */
export function optionsFromFlags(texts: (flag: string) => readonly string[], table: OptionTable = PEER_OPTIONS): PeerOptions {
  const options: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(table)) {
    if (isOption(entry)) {
      const given = texts(entry.flag);
      if (given.length > 0) options[key] = entry.kind.fromFlag(given, entry.flag);
    } else {
      const group = optionsFromFlags(texts, entry);
      if (Object.keys(group).length > 0) options[key] = group;
    }
  }
  return options as PeerOptions;
}

function readTable(table: OptionTable, given: unknown, prefix: string): Record<string, unknown> {
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new Error(`${prefix === '' ? 'options' : `option ${prefix.slice(0, -1)}`} must be an object`);
  for (const key of Object.keys(given)) if (!Object.hasOwn(table, key)) throw new Error(`unknown option ${prefix}${key}`);
  const values: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(table)) {
    const value = (given as Record<string, unknown>)[key];
    values[key] = isOption(entry) ? readOne(entry, value) : readTable(entry, value ?? {}, `${prefix}${key}.`);
  }
  return values;
}

function readOne(option: PeerOption<unknown, unknown>, value: unknown): unknown {
  // Unset, or an empty list of a repeatable flag: the default (a copy, as the config gets frozen).
  if (value === undefined || (option.kind.repeatable && Array.isArray(value) && value.length === 0)) {
    return typeof option.default === 'function' ? option.default() : structuredClone(option.default);
  }
  try {
    return option.kind.check(value, option.label);
  } catch (error) {
    if (option.error === undefined) throw error;
    throw new Error(option.error(value), { cause: error });
  }
}

function isOption(entry: PeerOption<unknown, unknown> | OptionTable): entry is PeerOption<unknown, unknown> {
  return 'kind' in entry && typeof entry.kind === 'object';
}

// Kinds of peer options: how a value is read from a flag's text, checked when a caller passes it,
// and shown in help. node/options.ts gives each option one of these.
import { resolve } from 'node:path';

/** How options of one kind are read, checked and shown: `In` is what callers pass, `Out` what the config holds. */
export interface Kind<In, Out> {
  /** Placeholder of the flag's value in help: `N`, `HOST:PORT`, `SECONDS`. */
  readonly metavar: string;
  /** The flag repeats into a list; an empty list means the option is unset. */
  readonly repeatable?: boolean;
  /** The texts given for `--flag` (every occurrence, in order) as a value callers pass; throws `--flag must be ..., got '...'`. */
  fromFlag(texts: readonly string[], flag: string): In;
  /** Checks a value a caller passed and returns it as the config holds it; throws `<label> must be ...`. */
  check(value: unknown, label: string): Out;
  /** A value as help and the README show it. */
  show(value: Out): string;
}

const WHOLE = /^\d+$/;
const DECIMAL = /^\d+(\.\d+)?$/;
const SIZE = /^(\d+)(?:([KMGT])(?:iB)?)?$/;
const MULTIADDR = /^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/\d{1,5}(\/p2p\/\w+)?$/;
const RATE = /^(\d+)(kbit|mbit|gbit)?$/;
const RATE_UNITS = { '': 1, kbit: 1000, mbit: 1000 ** 2, gbit: 1000 ** 3 } as const;
const UNITS = ['TiB', 'GiB', 'MiB', 'KiB'] as const;
const UNIT_BYTES = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 } as const;

/** An integer from `min` to `max` (no upper bound without `max`). */
export function integer(min: number, max?: number, metavar = 'N'): Kind<number, number> {
  const range = max === undefined ? `of at least ${min}` : `from ${min} to ${max}`;
  return {
    metavar,
    fromFlag: (texts, flag) => Number(matching(texts, flag, WHOLE, 'a whole number')),
    check: (value, label) => must(value, typeof value === 'number' && Number.isInteger(value) && value >= min && value <= (max ?? Infinity), label, `an integer ${range}`) as number,
    show: String,
  };
}

/** A number above `above` and at most `max` (CPU cores: fractions allowed). */
export function decimal(above: number, max: number): Kind<number, number> {
  return {
    metavar: 'N',
    fromFlag: (texts, flag) => Number(matching(texts, flag, DECIMAL, 'a number like 0.5 or 2')),
    check: (value, label) => must(value, typeof value === 'number' && value > above && value <= max, label, `more than ${above} and at most ${max}`) as number,
    show: String,
  };
}

/** A duration in whole milliseconds, at least `min`; the flag is in milliseconds too. */
export function milliseconds(min: number): Kind<number, number> {
  return {
    metavar: 'MS',
    fromFlag: (texts, flag) => Number(matching(texts, flag, WHOLE, 'a whole number of milliseconds')),
    check: (value, label) => must(value, typeof value === 'number' && Number.isInteger(value) && value >= min, label, `whole milliseconds, at least ${min}`) as number,
    show: (ms) => `${ms} ms`,
  };
}

/** A duration callers pass in whole milliseconds, at least `min`, whose flag is in seconds (decimals allowed). */
export function seconds(min: number): Kind<number, number> {
  return {
    ...milliseconds(min),
    metavar: 'SECONDS',
    fromFlag: (texts, flag) => Math.round(Number(matching(texts, flag, DECIMAL, 'a number of seconds')) * 1000),
    show: (ms) => `${ms / 1000} s`,
  };
}

/** A byte count of at least `min`; the flag takes a whole number or a binary size like `512MiB`. */
export function bytes(min: number): Kind<number, number> {
  return {
    metavar: 'BYTES',
    fromFlag: (texts, flag) => {
      const [, count, unit] = SIZE.exec(matching(texts, flag, SIZE, 'a whole number of bytes or a size like 512MiB'))!;
      return Number(count) * (unit === undefined ? 1 : UNIT_BYTES[unit as keyof typeof UNIT_BYTES]);
    },
    check: (value, label) => must(value, typeof value === 'number' && Number.isSafeInteger(value) && value >= min, label, `a whole number of bytes, at least ${formatBytes(min)}`) as number,
    show: formatBytes,
  };
}

/** One of a fixed list of words. */
export function oneOf<const T extends string>(values: readonly T[]): Kind<T, T> {
  const words = values.join(' or ');
  const known = (value: unknown): value is T => (values as readonly unknown[]).includes(value);
  return {
    metavar: values.join('|'),
    fromFlag: (texts, flag) => {
      const text = texts.at(-1)!;
      if (!known(text)) throw new Error(`--${flag} must be ${words}, got '${text}'`);
      return text;
    },
    check: (value, label) => must(value, known(value), label, words) as T,
    show: String,
  };
}

/** A listen address `HOST:PORT` (`[v6]:PORT` for IPv6; port 0 picks one); the config holds host and port. */
export function address(): Kind<string, { host: string; port: number }> {
  return {
    metavar: 'HOST:PORT',
    fromFlag: (texts) => texts.at(-1)!,
    check: (value, label) => {
      const parsed = typeof value === 'string' ? tryAddress(value) : undefined;
      return must(parsed, parsed !== undefined, label, 'HOST:PORT', value) as { host: string; port: number };
    },
    show: ({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`,
  };
}

/** TCP multiaddrs (`/ip4/127.0.0.1/tcp/7071`, optionally `/p2p/ID`), one per flag. */
export function multiaddrs(): Kind<readonly string[], string[]> {
  return {
    metavar: 'MULTIADDR',
    repeatable: true,
    fromFlag: (texts) => [...texts],
    check: (value, label) => {
      const list = must(value, Array.isArray(value) && value.every((addr) => typeof addr === 'string'), label, 'a list of multiaddr strings') as string[];
      const bad = list.find((addr) => !MULTIADDR.test(addr));
      if (bad !== undefined) throw new Error(`${bad} is not a TCP multiaddr like /ip4/127.0.0.1/tcp/7071`);
      return [...list];
    },
    show: (list) => list.join(', '),
  };
}

/** A file or directory; the config holds it absolute (relative to the working directory). */
export function path(metavar: 'DIR' | 'FILE'): Kind<string, string> {
  return {
    metavar,
    fromFlag: (texts) => texts.at(-1)!,
    check: (value, label) => resolve(must(value, typeof value === 'string' && value !== '', label, 'a path') as string),
    show: String,
  };
}

/** A string that passes `test`; `expects` says what it must look like. */
export function text(metavar: string, expects: string, test: (value: string) => boolean): Kind<string, string> {
  return {
    metavar,
    fromFlag: (texts) => texts.at(-1)!,
    check: (value, label) => must(value, typeof value === 'string' && test(value as string), label, expects) as string,
    show: String,
  };
}

/** A comma-separated list of strings that each pass `test` (the flag may also repeat); `expects` says what one must look like. */
export function list(metavar: string, expects: string, test: (value: string) => boolean): Kind<readonly string[], string[]> {
  return {
    metavar,
    repeatable: true,
    fromFlag: (texts) => texts.flatMap((text) => text.split(',')).map((item) => item.trim()).filter((item) => item !== ''),
    check: (value, label) => {
      const items = must(value, Array.isArray(value) && value.every((item) => typeof item === 'string'), label, `a list of ${expects}`) as string[];
      const bad = items.find((item) => !test(item));
      if (bad !== undefined) throw new Error(`${label} must be a list of ${expects}, got ${bad}`);
      return [...items];
    },
    show: (items) => items.join(','),
  };
}

/** A bit rate: a whole number of bits per second, or with a unit like `100mbit` or `1gbit`; 0 means none. */
export function rate(): Kind<number, number> {
  return {
    metavar: 'RATE',
    fromFlag: (texts, flag) => {
      const [, count, unit] = RATE.exec(matching(texts, flag, RATE, 'a rate like 0, 500mbit or 1gbit'))!;
      return Number(count) * RATE_UNITS[(unit ?? '') as keyof typeof RATE_UNITS];
    },
    check: (value, label) => must(value, typeof value === 'number' && Number.isSafeInteger(value) && value >= 0, label, 'a whole number of bits per second (0: unlimited)') as number,
    show: (bits) => {
      if (bits === 0) return '0 (unlimited)';
      const unit = (['gbit', 'mbit', 'kbit'] as const).find((name) => bits % RATE_UNITS[name] === 0);
      return unit === undefined ? `${bits}bit` : `${bits / RATE_UNITS[unit]}${unit}`;
    },
  };
}

/** Parses `HOST:PORT` (`[v6]:PORT` for IPv6); port 0 picks a free one. */
export function parseAddress(text: string): { host: string; port: number } {
  const parsed = tryAddress(text);
  if (!parsed) throw new Error(`address must be HOST:PORT, got ${text}`);
  return parsed;
}

/** Bytes as the largest binary unit that divides them: `16 GiB`, `512 MiB`, `1000 bytes`. */
function formatBytes(count: number): string {
  for (const unit of UNITS) {
    const size = UNIT_BYTES[unit[0] as keyof typeof UNIT_BYTES];
    if (count >= size && count % size === 0) return `${count / size} ${unit}`;
  }
  return `${count} bytes`;
}

function tryAddress(text: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  return match && port <= 65535 ? { host: (match[1] ?? match[2])!, port } : undefined;
}

/** The last text of a flag when it matches `pattern`; throws the flag's error otherwise. */
function matching(texts: readonly string[], flag: string, pattern: RegExp, expects: string): string {
  const text = texts.at(-1)!;
  if (!pattern.test(text)) throw new Error(`--${flag} must be ${expects}, got '${text}'`);
  return text;
}

/** `result` when `ok`; otherwise throws `<label> must be <expects>, got <given>` (`given` defaults to `result`). */
function must(result: unknown, ok: boolean, label: string, expects: string, given: unknown = result): unknown {
  if (!ok) throw new Error(`${label} must be ${expects}, got ${typeof given === 'string' ? given : JSON.stringify(given)}`);
  return result;
}

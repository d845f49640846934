// A tiny flag parser: flags anywhere before `--`, repeated list flags, unknown flags rejected.
import { UsageError } from './errors.ts';

/** How a flag takes its value: a switch, one string, or a string repeated into a list. */
export type FlagKind = 'boolean' | 'string' | 'list';

/** One accepted flag: its kind and an optional one-letter alias (`-t` for `--tty`). */
export interface FlagSpec {
  kind: FlagKind;
  short?: string;
}

/** The flags a command accepts, keyed by long name without dashes. */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** What a command accepts: its flags and, optionally, a trailing command line. */
export interface ArgsSpec {
  flags: FlagSpecs;
  /**
   * When set, the command takes a trailing command line: everything after `--`, or, when there is
   * no `--`, everything from the first positional past this many positionals on.
   */
  restAfter?: number;
}

/** The parsed command line of one command. */
export interface ParsedArgs {
  /** Positional arguments before `--` (and before the trailing command). */
  readonly positionals: readonly string[];
  /** The trailing command line, or undefined when there was none. */
  readonly rest: readonly string[] | undefined;
  /** Whether a boolean flag was given. */
  bool(name: string): boolean;
  /** The value of a string flag (the last one given), or undefined. */
  string(name: string): string | undefined;
  /** Every value of a list flag, in order. */
  list(name: string): string[];
  /** Every flag as given, in command-line order (value undefined for a switch): for commands where order across flags means something. */
  readonly given: readonly { name: string; value: string | undefined }[];
}

/** Parses `argv` (without the command words) against `spec`; throws UsageError on a bad flag. */
export function parseArgs(argv: readonly string[], spec: ArgsSpec): ParsedArgs {
  const byShort = new Map<string, string>();
  for (const [name, flag] of Object.entries(spec.flags)) {
    if (flag.short !== undefined) byShort.set(flag.short, name);
  }
  const separator = argv.indexOf('--');
  const head = separator >= 0 ? argv.slice(0, separator) : argv;
  let rest = separator >= 0 ? argv.slice(separator + 1) : undefined;
  const positionals: string[] = [];
  const values = new Map<string, string[]>();
  const booleans = new Set<string>();
  const given: { name: string; value: string | undefined }[] = [];

  for (let i = 0; i < head.length; i++) {
    const arg = head[i] as string;
    if (!arg.startsWith('-') || arg === '-') {
      if (rest === undefined && spec.restAfter !== undefined && positionals.length >= spec.restAfter) {
        // `sprite exec dev ls -l`: without `--`, the command starts at its first word.
        rest = head.slice(i);
        break;
      }
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const written = eq >= 0 ? arg.slice(0, eq) : arg;
    const name = written.startsWith('--') ? written.slice(2) : byShort.get(written.slice(1));
    const flag = name === undefined ? undefined : spec.flags[name];
    if (name === undefined || flag === undefined || (!written.startsWith('--') && written.length !== 2)) {
      throw new UsageError(`unknown flag '${written}'`);
    }
    if (flag.kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`flag ${written} takes no value`);
      booleans.add(name);
      given.push({ name, value: undefined });
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      value = head[i + 1];
      i++;
    }
    if (value === undefined) throw new UsageError(`flag ${written} needs a value`);
    const list = values.get(name) ?? [];
    list.push(value);
    values.set(name, list);
    given.push({ name, value });
  }

  return {
    positionals,
    rest,
    bool: (name) => booleans.has(name),
    string: (name) => values.get(name)?.at(-1),
    list: (name) => [...(values.get(name) ?? [])],
    given,
  };
}

/** Parses `K=V` strings into an object; throws UsageError when one has no `=` or an empty key. */
export function parseEnv(pairs: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env wants K=V, got '${pair}'`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/** Parses a TCP port; `allowZero` accepts 0 (pick a free port). Throws UsageError otherwise. */
export function parsePort(text: string, what: string, allowZero = false): number {
  const port = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port > 65535 || port < (allowZero ? 0 : 1)) {
    throw new UsageError(`${what} must be a port number ${allowZero ? '0' : '1'}-65535, got '${text}'`);
  }
  return port;
}

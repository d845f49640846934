import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { exists } from './command.ts';
import { VmError } from './errors.ts';
import type { Progress } from './rootfs.ts';

/** A Debian suite name as debootstrap takes it. */
export const DEBIAN_SUITE = /^[a-z][a-z0-9-]{1,31}$/;

/** The debootstrap program, or undefined when it is not installed. */
export async function findDebootstrap(): Promise<string | undefined> {
  for (const path of ['/usr/sbin/debootstrap', '/sbin/debootstrap', '/usr/bin/debootstrap']) if (await exists(path)) return path;
  return undefined;
}

/**
 * Runs debootstrap (minbase) into `root`. It speaks its installer protocol (`--debian-installer`)
 * on descriptors 3 and 4, so that progress comes with a percentage.
 */
export async function debootstrap(root: string, source: { suite: string; mirror: string }, progress: Progress): Promise<void> {
  const program = await findDebootstrap();
  if (!program) throw new VmError('ERR_IMAGE_SOURCE', 'debootstrap is not installed on this peer (install the Debian package debootstrap)');
  const child = spawn(program, ['--debian-installer', '--variant=minbase', source.suite, root, source.mirror], {
    stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
  });
  const output = new InstallerOutput(progress);
  const lines = (stream: Readable | null | undefined, onLine: (line: string) => void): void => {
    if (stream) createInterface({ input: stream }).on('line', onLine);
  };
  lines(child.stdio[3] as Readable, (line) => output.line(line));
  lines(child.stdio[4] as Readable, (line) => output.line(line));
  // dpkg's own output: kept for the error report only.
  lines(child.stdout, (line) => output.remember(line));
  lines(child.stderr, (line) => output.remember(line));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  if (code !== 0) throw new VmError('ERR_IMAGE_SOURCE', `debootstrap ${source.suite} from ${source.mirror} failed (exit ${code}): ${output.tail.join(' / ')}`);
  // Stages with nothing to do (minbase has no base set to configure) report no progress at all.
  progress(`Debian ${source.suite} root ready`, 100);
}

/**
 * debootstrap's progress stages in order, each with its share of the whole build in percent
 * (downloading and configuring take most of it). Each stage counts NOW of END on its own.
 */
const STAGES: ReadonlyArray<readonly [string, number]> = [
  ['DOWNREL', 1], ['DOWNRELSIG', 1], ['DOWNMAINPKGS', 2], ['DOWNPKGS', 2], ['SIZEDEBS', 2], ['DOWNDEBS', 30],
  ['INSTCORE', 12], ['UNPACKREQ', 10], ['CONFREQ', 15], ['UNPACKBASE', 10], ['CONFBASE', 15],
];

/** The whole build's percentage when stage `name` is at `now` of `end`; undefined for an unknown stage. */
function overallPercent(name: string, now: number, end: number): number | undefined {
  let before = 0;
  for (const [stage, share] of STAGES) {
    if (stage === name) return Math.floor(before + (share * Math.min(now, end)) / end);
    before += share;
  }
  return undefined;
}

/**
 * Reads debootstrap's installer protocol. Progress is `P: NOW END STAGE`, then `PA: ARG` lines and
 * a `PF: FORMAT` line; messages are `I: NAME` (or `W:`, `E:`), `IA: ARG` lines and `IF: FORMAT`.
 * Either may come on descriptor 3 or 4 (the version here sends both on 3). Each complete one goes
 * to `progress` as printf-formatted text with the latest percentage.
 */
export class InstallerOutput {
  readonly #progress: Progress;
  #percent: number | undefined;
  #progressArgs: string[] = [];
  #messageArgs: string[] = [];
  /** The last few lines, for an error report. */
  readonly tail: string[] = [];

  constructor(progress: Progress) {
    this.#progress = progress;
  }

  line(line: string): void {
    const part = /^([PIWE])([AF]?): ?(.*)$/.exec(line);
    if (!part) {
      this.remember(line);
      return;
    }
    const [, kind, field, text] = part as unknown as [string, string, string, string];
    if (kind === 'P') {
      const started = field === '' ? /^(\d+) (\d+) (\S+)/.exec(text) : null;
      if (started && Number(started[2]) > 0) {
        const percent = overallPercent(started[3]!, Number(started[1]), Number(started[2]));
        // Stages overlap a little (a download retried): the bar never goes back.
        if (percent !== undefined) this.#percent = Math.max(this.#percent ?? 0, percent);
      }
      if (field === '') this.#progressArgs = [];
      else if (field === 'A') this.#progressArgs.push(text);
      else this.#emit(printf(text, this.#progressArgs));
      return;
    }
    if (field === '') this.#messageArgs = [];
    else if (field === 'A') this.#messageArgs.push(text);
    else this.#emit(`${kind === 'W' ? 'warning: ' : kind === 'E' ? 'error: ' : ''}${printf(text, this.#messageArgs)}`);
  }

  remember(line: string): void {
    this.tail.push(line);
    if (this.tail.length > 5) this.tail.shift();
  }

  #emit(formatted: string): void {
    const text = formatted.trim();
    this.remember(text);
    this.#progress(text, this.#percent);
  }
}

/** The subset of printf debootstrap's formats use: %s and %d in order, and %%. */
function printf(format: string, args: readonly string[]): string {
  let next = 0;
  return format.replace(/%[sd%]/g, (spec) => (spec === '%%' ? '%' : args[next++] ?? ''));
}

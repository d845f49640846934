#!/usr/bin/env node
// The `sprite` CLI: finds the command, parses its arguments, runs it, and exits with its status.
import { parseArgs, type ArgsSpec, type ParsedArgs } from './args.ts';
import { createClient } from './client.ts';
import type { Client } from './client.ts';
import type { Command, Context } from './command.ts';
import { DEFAULT_API_URL, PEER_DEFAULTS } from '../defaults.ts';
import { loadConfig } from './config.ts';
import { UsageError, describeError } from './errors.ts';
import type { Io } from './exec.ts';
import { interactiveCommands } from './interactive.ts';
import { peerStartCommand } from './peer-start.ts';
import { peerCommands } from './peers.ts';
import { serviceCommands } from './services.ts';
import { sessionCommands } from './sessions.ts';
import { spriteCommands } from './sprites.ts';
import { urlCommands } from './url.ts';
import { policyCommands } from './policy.ts';
import { checkpointCommands } from './checkpoints.ts';
import { imageCommands } from './images.ts';
import { tenantCommands } from './tenants.ts';
import { spriteContext, useCommand } from './context.ts';
import { rawApiCommand } from './raw-api.ts';

/** Every command, in the order usage lists them. */
const COMMANDS: readonly Command[] = [
  peerStartCommand,
  ...peerCommands,
  ...spriteCommands.filter((c) => c.words[0] !== 'logs' && c.words[0] !== 'pool'),
  ...interactiveCommands,
  ...sessionCommands,
  ...serviceCommands,
  ...urlCommands,
  ...policyCommands,
  ...checkpointCommands,
  ...imageCommands,
  ...tenantCommands,
  useCommand,
  rawApiCommand,
  ...spriteCommands.filter((c) => c.words[0] === 'logs' || c.words[0] === 'pool'),
];

/** The help flag every command accepts. */
const HELP_FLAG = { help: { kind: 'boolean', short: 'h' } } as const;

/** The flag that names the sprite of a command that works on one, instead of its NAME argument. */
const SPRITE_FLAG = { sprite: { kind: 'string', short: 's' } } as const;

/** Short names of commands, as Sprites' CLI has them. */
const ALIASES: Readonly<Record<string, string>> = { x: 'exec', c: 'console' };

/** Commands whose NAME is not a sprite: they never take it from `-s` or a `.sprite` file. */
const NOT_SPRITE = new Set(['create', 'org', 'token', 'image', 'use']);

/** Whether `cmd` works on an existing sprite named by its first argument. */
function takesSprite(cmd: Command): boolean {
  return cmd.required[0] === 'NAME' && !NOT_SPRITE.has(cmd.words[0] ?? '');
}

/**
 * Parses a command's arguments. A command that works on a sprite also takes it from `-s NAME` or,
 * when its line names none, from the `.sprite` file of this directory or one above; a command that
 * runs a command line (exec) then reads its whole line as that command: `sprite exec ls -l`.
 */
function parseCommandArgs(cmd: Command, argv: readonly string[], cwd: string): ParsedArgs {
  const flags = { ...cmd.spec.flags, ...HELP_FLAG };
  if (!takesSprite(cmd)) return parseArgs(argv, { ...cmd.spec, flags });
  const spec: ArgsSpec = { ...cmd.spec, flags: { ...flags, ...SPRITE_FLAG } };
  const withName = (args: ParsedArgs, name: string): ParsedArgs => ({ ...args, positionals: [name, ...args.positionals] });
  if (cmd.spec.restAfter !== undefined) {
    const asCommand = parseArgs(argv, { ...spec, restAfter: cmd.spec.restAfter - 1 });
    const context = asCommand.bool('help') ? undefined : spriteContext(asCommand.string('sprite'), cwd);
    return context === undefined ? parseArgs(argv, spec) : withName(asCommand, context.name);
  }
  const args = parseArgs(argv, spec);
  const flag = args.string('sprite');
  if (flag !== undefined) return withName(args, spriteContext(flag, cwd)?.name ?? flag);
  if (args.positionals.length >= cmd.required.length || args.bool('help')) return args;
  const context = spriteContext(undefined, cwd);
  return context === undefined ? args : withName(args, context.name);
}

/** Usage lines of some commands. */
function synopses(commands: readonly Command[]): string[] {
  return commands.flatMap((c) => [`  sprite ${[...c.words, c.usage].join(' ').trim()}`, `      ${c.summary}`]);
}

/** The full usage text. */
function usage(): string {
  return [
    'usage: sprite <command> [flags]',
    '',
    'commands:',
    ...synopses(COMMANDS),
    '  sprite help [COMMAND]',
    '      show this text, or the usage of one command',
    '',
    'environment:',
    `  SPRITE_API       address of the peer API (default ${DEFAULT_API_URL})`,
    '  SPRITE_TOKEN     API token (default: the file token in the data directory)',
    `  SPRITE_DATA_DIR  data directory (default ~/${PEER_DEFAULTS.dataDirName})`,
    '',
  ].join('\n');
}

/** Usage of the commands whose words start with `topic`, or the full text when none match. */
function help(topic: readonly string[]): string {
  const matching = COMMANDS.filter((c) => topic.length > 0 && topic.every((w, i) => c.words[i] === w));
  return matching.length === 0 ? usage() : ['usage:', ...synopses(matching), ...matching.flatMap((c) => c.details?.() ?? []), ''].join('\n');
}

/** Finds the command named by the first words of argv; throws UsageError when there is none. */
function findCommand(argv: readonly string[]): Command {
  const matches = COMMANDS.filter((c) => c.words.every((w, i) => argv[i] === w));
  const found = matches.sort((a, b) => b.words.length - a.words.length)[0];
  if (found !== undefined) return found;
  const first = argv[0] ?? '';
  const group = COMMANDS.filter((c) => c.words.length > 1 && c.words[0] === first);
  if (group.length > 0) {
    const subs = group.map((c) => c.words[1]).join(', ');
    const second = argv[1];
    throw new UsageError(
      second === undefined || second.startsWith('-')
        ? `'${first}' needs a subcommand: ${subs}`
        : `unknown ${first} command '${second}' (one of: ${subs})`,
    );
  }
  throw new UsageError(`unknown command '${first}' (see 'sprite help')`);
}

/** Checks positionals and the trailing command line against what the command declares. */
function checkArity(cmd: Command, positionals: readonly string[], rest: readonly string[] | undefined): void {
  const synopsis = `usage: sprite ${[...cmd.words, cmd.usage].join(' ').trim()}`;
  const missing = cmd.required[positionals.length];
  if (missing !== undefined) throw new UsageError(`missing ${missing} (${synopsis})`);
  const max = cmd.required.length + (cmd.optional?.length ?? 0);
  const extra = positionals[max];
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}' (${synopsis})`);
  if (cmd.needsCommand === true && (rest === undefined || rest.length === 0)) {
    throw new UsageError(`missing command after -- (${synopsis})`);
  }
  if (cmd.needsCommand !== true && rest !== undefined && rest.length > 0) {
    throw new UsageError(`unexpected argument '${rest[0]}' (${synopsis})`);
  }
}

/** What to do for one command line: print a text and exit, or run a command. */
type Plan =
  | { kind: 'print'; to: 'stdout' | 'stderr'; text: string; code: number }
  | { kind: 'run'; cmd: Command; ctx: Context };

/** Works out what `argv` (without node and script) asks for; throws UsageError on a bad line. */
function plan(argv: readonly string[], io: Io, env: NodeJS.ProcessEnv): Plan {
  const first = argv[0];
  if (first === undefined) return { kind: 'print', to: 'stderr', text: usage(), code: 2 };
  if (first === 'help' || first === '--help' || first === '-h') {
    return { kind: 'print', to: 'stdout', text: help(argv.slice(1)), code: 0 };
  }
  const alias = ALIASES[first];
  if (alias !== undefined) argv = [alias, ...argv.slice(1)];
  const cmd = findCommand(argv);
  const args = parseCommandArgs(cmd, argv.slice(cmd.words.length), process.cwd());
  if (args.bool('help')) return { kind: 'print', to: 'stdout', text: help(cmd.words), code: 0 };
  checkArity(cmd, args.positionals, args.rest);
  let client: Client | undefined;
  const ctx: Context = {
    args,
    positionals: args.positionals,
    io,
    env,
    client: () => {
      if (client === undefined) {
        const config = loadConfig(env);
        client = createClient({ api: config.api, token: config.token, tokenPath: config.tokenPath });
      }
      return client;
    },
  };
  return { kind: 'run', cmd, ctx };
}

/** Flushes stdout and stderr, then exits with `code`. */
function exitAfterFlush(code: number): void {
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

/** Prints an error as one `sprite: ...` line and exits with its status. */
function fail(err: unknown): void {
  const { exitCode, message } = describeError(err);
  process.stderr.write(`sprite: ${message}\n`);
  exitAfterFlush(exitCode);
}

/** Runs the CLI against the real process. */
async function main(): Promise<void> {
  // Getters, so commands that never read stdin do not open it.
  const io: Io = {
    get stdin() {
      return process.stdin;
    },
    get stdout() {
      return process.stdout;
    },
    get stderr() {
      return process.stderr;
    },
  };
  let ownsShutdown = false;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    // The peer outlives its output (a supervisor that died): it still stops its sprites on a signal.
    if (ownsShutdown) return;
    // A closed pipe (`sprite logs x | head`) is a normal way for the reader to stop us.
    if (err.code === 'EPIPE') process.exit(0);
    process.exit(1);
  });
  let next: Plan;
  try {
    next = plan(process.argv.slice(2), io, process.env);
  } catch (err) {
    fail(err);
    return;
  }
  if (next.kind === 'print') {
    process[next.to].write(next.text);
    exitAfterFlush(next.code);
    return;
  }
  const { cmd, ctx } = next;
  ownsShutdown = cmd.keepAlive === true;
  if (!ownsShutdown) {
    // Client commands promise one line and no stack trace, even for bugs.
    process.on('uncaughtException', fail).on('unhandledRejection', fail);
  }
  let code: number;
  try {
    code = await cmd.run(ctx);
  } catch (err) {
    fail(err);
    return;
  }
  // A long-running command (the peer) owns its shutdown; everything else exits now.
  if (ownsShutdown) process.exitCode = code;
  else exitAfterFlush(code);
}

await main();

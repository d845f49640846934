// `sprite peer start`: the flags of the peer's option table (../options.ts), handed over to ../peer.ts.
import type { FlagSpecs } from './args.ts';
import type { Command } from './command.ts';
import { CliError, UsageError } from './errors.ts';
import { optionHelp } from '../options-doc.ts';
import { listOptions, optionsFromFlags, type PeerOptions } from '../options.ts';

/** One flag per option: a list flag when the option repeats. */
const FLAGS: FlagSpecs = Object.fromEntries(listOptions().map(({ option }) => [option.flag, { kind: option.kind.repeatable ? 'list' : 'string' }]));

/** The `sprite peer start` command. */
export const peerStartCommand: Command = {
  words: ['peer', 'start'],
  usage: '[--FLAG VALUE]...',
  summary: "run a peer in the foreground ('sprite help peer start' lists the flags)",
  details: optionHelp,
  spec: { flags: FLAGS },
  required: [],
  keepAlive: true,
  run: async (ctx) => {
    let options: PeerOptions;
    try {
      options = optionsFromFlags((flag) => ctx.args.list(flag));
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    // Loaded lazily: client commands should not pay for (or depend on) the peer's modules.
    const { runPeer } = await import('../peer.ts').catch((err: unknown) => {
      throw new CliError('ERR_PEER_LOAD', `cannot load the peer: ${(err as Error).message}`, { cause: err });
    });
    await runPeer(options);
    return 0;
  },
};

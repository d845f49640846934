// `sprite policy get|set NAME`: a sprite's network policy (Sprites' `/policy/network` document).
import { readFile } from 'node:fs/promises';
import type { Command, Context } from './command.ts';
import { JSON_FLAG, arg, print, spritePath } from './command.ts';
import { UsageError } from './errors.ts';
import { json } from './format.ts';

/** One rule as the API holds it. */
type Rule = { domain: string; action: 'allow' | 'deny' } | { include: string };

export interface NetworkPolicyDoc {
  rules: Rule[];
}

/** The path of a sprite's network policy. */
export function networkPolicyPath(name: string): string {
  return `${spritePath(name)}/policy/network`;
}

/** A policy as lines (`allow github.com`, `include defaults`, `deny *`); no rules reads as everything allowed. */
export function policyLines(policy: NetworkPolicyDoc | undefined): string[] {
  const rules = policy?.rules ?? [];
  if (rules.length === 0) return ['(no rules: every name allowed)'];
  return rules.map((rule) => ('include' in rule ? `include ${rule.include}` : `${rule.action} ${rule.domain}`));
}

/** The rules the flags give, in their order on the command line. */
function rulesFromFlags(ctx: Context): Rule[] {
  const rules: Rule[] = [];
  for (const { name, value } of ctx.args.given) {
    if (name === 'include-defaults') rules.push({ include: 'defaults' });
    if ((name === 'allow' || name === 'deny') && value !== undefined) rules.push({ domain: value, action: name });
  }
  return rules;
}

async function fromFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`--file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--file ${file}: not a JSON document like {"rules": [{"domain": "github.com", "action": "allow"}]}`);
  }
}

async function show(ctx: Context, name: string): Promise<number> {
  const policy = await ctx.client().json<NetworkPolicyDoc>('GET', networkPolicyPath(name));
  await print(ctx.io, ctx.args.bool('json') ? json(policy ?? null) : `${policyLines(policy).join('\n')}\n`);
  return 0;
}

/** Commands about a sprite's network policy. */
export const policyCommands: readonly Command[] = [
  {
    words: ['policy', 'get'],
    usage: 'NAME [--json]',
    summary: "print a sprite's network policy, one rule a line (the first that matches a name decides)",
    spec: { flags: JSON_FLAG },
    required: ['NAME'],
    run: (ctx) => show(ctx, arg(ctx, 0)),
  },
  {
    words: ['policy', 'set'],
    usage: "NAME [--allow DOMAIN] [--deny DOMAIN] [--include-defaults] ... | --file POLICY.json [--json]",
    summary: "replace a sprite's network policy: rules in the order of the flags (DOMAIN: name, *.name or *), or a JSON document",
    spec: { flags: { ...JSON_FLAG, allow: { kind: 'list' }, deny: { kind: 'list' }, 'include-defaults': { kind: 'boolean' }, file: { kind: 'string' } } },
    required: ['NAME'],
    run: async (ctx) => {
      const rules = rulesFromFlags(ctx);
      const file = ctx.args.string('file');
      if (file !== undefined && rules.length > 0) throw new UsageError('give rules with --allow/--deny/--include-defaults or --file, not both');
      if (file === undefined && rules.length === 0) throw new UsageError('give the rules: --allow DOMAIN, --deny DOMAIN, --include-defaults (in order), or --file POLICY.json');
      const body = file === undefined ? { rules } : await fromFile(file);
      await ctx.client().json('POST', networkPolicyPath(arg(ctx, 0)), body);
      return show(ctx, arg(ctx, 0));
    },
  },
];

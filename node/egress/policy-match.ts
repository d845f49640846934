import type { NetworkPolicy } from '../policies.ts';

/**
 * What a network policy means for a DNS name. Sprites documents "exact matches, wildcard
 * subdomains, and preset rule bundles", REFUSED for denied lookups, and shows policies that end in
 * an explicit `{domain: "*", action: "deny"}`: so rules are read in order, the first that matches
 * decides, and a name no rule matches is allowed (a policy that wants an allow list says `*` deny
 * at its end). `*.example.com` matches the names under example.com, not example.com itself.
 */

/** A rule after `include` is expanded. */
export interface DomainRule {
  domain: string;
  action: 'allow' | 'deny';
}

/** A compiled policy: what the resolver asks per query. */
export interface PolicyMatcher {
  /** The decision for a DNS name (any case, trailing dot or not). */
  decide(name: string): 'allow' | 'deny';
  /**
   * True when some name is denied for want of an allow rule (a `*` deny is reachable): then only
   * addresses learned from allowed answers may be contacted, and a literal IP gets nowhere.
   */
  readonly restrictive: boolean;
}

/**
 * The `defaults` preset: where a developer's tools fetch from (distribution mirrors, source hosts,
 * package registries, container registries). Kept short and readable; a policy adds what it needs.
 */
export const DEFAULT_DESTINATIONS: readonly string[] = [
  // Debian and Ubuntu packages.
  'deb.debian.org', 'security.debian.org', '*.debian.org', 'archive.ubuntu.com', 'security.ubuntu.com', 'ports.ubuntu.com', '*.ubuntu.com',
  'dl-cdn.alpinelinux.org',
  // Source hosting.
  'github.com', '*.github.com', '*.githubusercontent.com', 'gitlab.com', '*.gitlab.com',
  // Language registries.
  'registry.npmjs.org', '*.npmjs.org', 'registry.yarnpkg.com',
  'pypi.org', 'files.pythonhosted.org',
  'crates.io', '*.crates.io', 'static.rust-lang.org',
  'proxy.golang.org', 'sum.golang.org',
  'rubygems.org', 'repo.maven.apache.org', 'repo1.maven.org',
  // Container registries.
  'docker.io', '*.docker.io', 'production.cloudflare.docker.com', 'ghcr.io', '*.ghcr.io',
];

/** The policies a peer gives new sprites (`--egress-default-policy`). */
export type EgressDefault = 'allow-all' | 'defaults' | 'deny-all';
export const EGRESS_DEFAULTS: readonly EgressDefault[] = ['allow-all', 'defaults', 'deny-all'];

/** The document each peer default stands for; `allow-all` is no rules at all. */
export function defaultPolicy(kind: EgressDefault): NetworkPolicy {
  if (kind === 'allow-all') return { rules: [] };
  const deny = { domain: '*', action: 'deny' } as const;
  return { rules: kind === 'defaults' ? [{ include: 'defaults' }, deny] : [deny] };
}

/** The rules in order, `{include: "defaults"}` replaced by an allow rule per preset entry. */
export function expandRules(policy: NetworkPolicy): DomainRule[] {
  return policy.rules.flatMap((rule): DomainRule[] =>
    'include' in rule ? DEFAULT_DESTINATIONS.map((domain) => ({ domain, action: 'allow' })) : [{ domain: rule.domain.toLowerCase(), action: rule.action }],
  );
}

/** A name as rules compare it: lowercase, without the trailing dot of a fully qualified name. */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Whether a pattern (`example.com`, `*.example.com` or `*`) matches a normalized name. */
export function matches(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*.')) return name.length > pattern.length - 1 && name.endsWith(pattern.slice(1));
  return name === pattern;
}

/** Compiles a policy once; the compiled form is kept per policy object, so a caller may pass the same object every query. */
export function compilePolicy(policy: NetworkPolicy): PolicyMatcher {
  const known = compiled.get(policy);
  if (known) return known;
  const rules = expandRules(policy);
  const star = rules.find((rule) => rule.domain === '*');
  const matcher: PolicyMatcher = {
    decide: (name) => {
      const normal = normalizeName(name);
      for (const rule of rules) if (matches(rule.domain, normal)) return rule.action;
      return 'allow';
    },
    restrictive: star?.action === 'deny',
  };
  compiled.set(policy, matcher);
  return matcher;
}

const compiled = new WeakMap<NetworkPolicy, PolicyMatcher>();

// The nftables text of a peer's egress table and of the per-sprite changes, fed to `nft -f -`.
// One table per peer (`inet sprites_<tag>`), so a peer's rules never touch another's and its
// leftovers go with one `delete table`. Kept pure: every function returns ruleset text.

/** What the peer's table is built from. */
export interface TableSpec {
  /** Table name, `sprites_<tag>`. */
  table: string;
  /** Host ends of sprite veths all start with this. */
  vethPrefix: string;
  /** The only interface sprite traffic may leave through. */
  uplink: string;
  /** The peer's sprite range (CIDR). */
  range: string;
  gateway: string;
  /** Destinations sprites never reach (CIDRs)... */
  blocked: string[];
  /** ... except these (CIDRs the operator allowed). */
  allowed: string[];
}

/** Ranges a sprite never reaches unless the operator allows them: this host's and other peers' sprites, loopback, link-local and metadata, private networks, multicast and reserved space. */
export const BLOCKED = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/3',
];

/** Private ranges `--egress-allow-private` may open (a CIDR inside one of these). */
export const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

const REJECT = 'reject with icmpx admin-prohibited';

/**
 * The whole table, replacing any earlier one of the same name. Every packet from a sprite is
 * filtered, not only new connections: restricting a sprite cuts its open connections too.
 */
export function tableRuleset(spec: TableSpec): string {
  const t = `inet ${spec.table}`;
  const sprites = `"${spec.vethPrefix}*"`;
  const elements = (list: string[]): string => (list.length > 0 ? ` elements = { ${list.join(', ')} };` : '');
  return [
    `table ${t}`,
    `delete table ${t}`,
    `table ${t} {`,
    // Which veth holds which address: a sprite sending from another address is dropped.
    '  set bindings { type ifname . ipv4_addr; }',
    `  set blocked { type ipv4_addr; flags interval; auto-merge;${elements([...spec.blocked, spec.range])} }`,
    `  set allowed { type ipv4_addr; flags interval; auto-merge;${elements(spec.allowed)} }`,
    // veth -> that sprite's chain (its restriction and allow set).
    '  map sprite_chains { type ifname : verdict; }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    iifname ${sprites} jump from_sprite`,
    `    oifname ${sprites} jump to_sprite`,
    '  }',
    '  chain from_sprite {',
    '    meta nfproto != ipv4 drop',
    '    iifname . ip saddr != @bindings drop',
    `    oifname != "${spec.uplink}" ${REJECT}`,
    `    ip daddr != @allowed ip daddr @blocked ${REJECT}`,
    '    iifname vmap @sprite_chains',
    '    drop',
    '  }',
    // Inbound: replies only. The edge proxy and `sprite proxy` reach sprites through sprite-init's socket.
    '  chain to_sprite {',
    '    meta nfproto != ipv4 drop',
    '    ct state established,related accept',
    '    drop',
    '  }',
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname ${sprites} jump sprite_input`,
    '  }',
    // The host itself: DNS on the gateway (the policy resolver) and nothing else.
    '  chain sprite_input {',
    '    meta nfproto != ipv4 drop',
    '    iifname . ip saddr != @bindings drop',
    `    ip daddr ${spec.gateway} udp dport 53 accept`,
    `    ip daddr ${spec.gateway} tcp dport 53 accept`,
    `    ${REJECT}`,
    '  }',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${spec.range} oifname "${spec.uplink}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** One sprite as the table knows it. */
export interface SpriteSpec {
  table: string;
  /** Host end of its veth. */
  veth: string;
  address: string;
}

/** Names of a sprite's chain, allow set (restricted: only these pass) and cut set (never these, for a while). */
export function spriteNames(veth: string): { chain: string; set: string; cut: string } {
  return { chain: `s_${veth}`, set: `allow_${veth}`, cut: `cut_${veth}` };
}

/** Adds a sprite: its chain (unrestricted), its sets, its binding and its entry in the chain map. */
export function addSprite(spec: SpriteSpec): string {
  const t = `inet ${spec.table}`;
  const { chain, set, cut } = spriteNames(spec.veth);
  return [
    `add chain ${t} ${chain}`,
    `add set ${t} ${set} { type ipv4_addr; flags timeout; }`,
    `add set ${t} ${cut} { type ipv4_addr; flags timeout; }`,
    ...chainRules(spec, false),
    `add element ${t} bindings { "${spec.veth}" . ${spec.address} }`,
    `add element ${t} sprite_chains { "${spec.veth}" : goto ${chain} }`,
    '',
  ].join('\n');
}

/** Removes what addSprite added. */
export function removeSprite(spec: SpriteSpec): string {
  const t = `inet ${spec.table}`;
  const { chain, set, cut } = spriteNames(spec.veth);
  return [
    `delete element ${t} sprite_chains { "${spec.veth}" }`,
    `delete element ${t} bindings { "${spec.veth}" . ${spec.address} }`,
    `flush chain ${t} ${chain}`,
    `delete chain ${t} ${chain}`,
    `delete set ${t} ${set}`,
    `delete set ${t} ${cut}`,
    '',
  ].join('\n');
}

/** Rewrites a sprite's chain: restricted, only addresses in its allow set pass (TCP gets a reset, so cut connections end at once). */
export function restrict(spec: SpriteSpec, on: boolean): string {
  return [`flush chain inet ${spec.table} ${spriteNames(spec.veth).chain}`, ...chainRules(spec, on), ''].join('\n');
}

/** Takes addresses out of a sprite's allow and cut sets and puts them in one of them for `seconds`. */
function place(spec: SpriteSpec, addresses: string[], into: 'set' | 'cut', seconds: number): string {
  const names = spriteNames(spec.veth);
  // Each is added before it is deleted, so one that was not there is no error; an element already
  // there would keep its old timeout on a plain add.
  const removed = (set: string, address: string): string[] => [`add element inet ${spec.table} ${set} { ${address} }`, `delete element inet ${spec.table} ${set} { ${address} }`];
  return addresses.flatMap((address) => [
    ...removed(names.set, address),
    ...removed(names.cut, address),
    `add element inet ${spec.table} ${names[into]} { ${address} timeout ${seconds}s }`,
  ]).concat('').join('\n');
}

/** Puts addresses in a sprite's allow set for `ttlSeconds` (renewing their timeout) and out of its cut set. */
export function admit(spec: SpriteSpec, addresses: string[], ttlSeconds: number): string {
  return place(spec, addresses, 'set', ttlSeconds);
}

/**
 * Takes addresses out of a sprite's allow set and puts them in its cut set for `seconds`, so an
 * unrestricted sprite loses them too (a name its new policy denies, until its answer would expire).
 */
export function revoke(spec: SpriteSpec, addresses: string[], seconds: number): string {
  return place(spec, addresses, 'cut', seconds);
}

/** Empties a sprite's allow set. */
export function revokeAll(spec: SpriteSpec): string {
  return `flush set inet ${spec.table} ${spriteNames(spec.veth).set}\n`;
}

function chainRules(spec: SpriteSpec, restricted: boolean): string[] {
  const names = spriteNames(spec.veth);
  const rule = `add rule inet ${spec.table} ${names.chain}`;
  const refuse = (match: string): string[] => [`${rule} ${match}meta l4proto tcp reject with tcp reset`, `${rule} ${match}${REJECT}`];
  if (!restricted) return [...refuse(`ip daddr @${names.cut} `), `${rule} accept`];
  return [`${rule} ip daddr @${names.set} accept`, ...refuse('')];
}

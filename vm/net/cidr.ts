// IPv4 addresses and CIDR ranges as numbers: what the egress range, the sprite addresses and the
// firewall's sets are computed from.

/** An IPv4 range: its first address (as a 32-bit number) and prefix length. */
export interface Cidr {
  base: number;
  prefix: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** `a.b.c.d` as a number; undefined when it is not a dotted quad. */
export function parseIpv4(text: string): number | undefined {
  const match = IPV4.exec(text);
  if (!match) return undefined;
  const parts = match.slice(1).map(Number);
  if (parts.some((part) => part > 255)) return undefined;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

/** A number as `a.b.c.d`. */
export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
}

/** `a.b.c.d/n` (a bare address is a /32); the base is masked. Undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const [address, bits, extra] = text.split('/');
  if (extra !== undefined || address === undefined) return undefined;
  const base = parseIpv4(address);
  const prefix = bits === undefined ? 32 : /^\d{1,2}$/.test(bits) ? Number(bits) : NaN;
  if (base === undefined || !(prefix >= 0 && prefix <= 32)) return undefined;
  return { base: (base & mask(prefix)) >>> 0, prefix };
}

/** A range as `a.b.c.d/n`. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.base)}/${cidr.prefix}`;
}

/** Number of addresses in a range. */
export function size(cidr: Cidr): number {
  return 2 ** (32 - cidr.prefix);
}

/** True when the two ranges share an address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
  const prefix = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(prefix)) >>> 0) === ((b.base & mask(prefix)) >>> 0);
}

/** True when `address` lies in `cidr`. */
export function contains(cidr: Cidr, address: number): boolean {
  return ((address & mask(cidr.prefix)) >>> 0) === cidr.base;
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
}

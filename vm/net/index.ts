export { Egress, egressNames, sweepEgress, type EgressSettings, type NetworkAttacher, type SpriteNetwork } from './egress.ts';
export type { SpriteFirewall, EgressFirewall } from './firewall.ts';
export { defaultNameserver, defaultUplink, linkExists } from './host.ts';
export { parseCidr, formatCidr } from './cidr.ts';
export { BLOCKED, PRIVATE } from './ruleset.ts';

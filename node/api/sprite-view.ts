import { spriteHost, type ProxyAddress } from '../../proxy/index.ts';
import type { SpriteRecord } from '../records/index.ts';
import { STORAGE_GB } from '../sprite-settings.ts';
import type { Limits } from '../../vm/index.ts';

const MiB = 1024 ** 2;

/**
 * A sprite on the wire: Sprites' sprite object (what `@fly/sprites` reads), then this mesh's own
 * fields, snake_case like the rest.
 */
export interface SpriteObject {
  id: string;
  name: string;
  organization: string;
  /** `running`, `warm`, `cold` as in Sprites; `stopped` (a user's stop) and `failed` are ours. */
  status: string;
  /** The sprite's URL on the answering peer's proxy: HTTPS when it listens, else HTTP; null without a proxy. */
  url: string | null;
  url_settings: { auth: string; private_access: 'org_users' };
  labels: string[];
  config: { ram_mb: number; cpus: number; storage_gb: number };
  environment: Record<string, string>;
  created_at: string;
  updated_at: string;
  last_running_at: string | null;
  last_warming_at: string | null;
  /** The runtime version (sprite-init's code) of the sandbox it last started in. */
  version: string | null;
  /** The peer that runs it, and how the answering peer sees that peer: alive, suspect, down (unknown if not a member). */
  owner: string;
  owner_state: string;
  epoch: number;
  /** The object store holding its disk. */
  volume: string | null;
  /** Names of its services, as mirrored in its record. */
  services: string[];
  /** The port inside the sprite its URL serves. */
  http_port: number;
  /** Its plain-HTTP URL on the answering peer's proxy, or null. */
  http_url: string | null;
  /** Why it failed, when it did. */
  reason?: string;
}

/** What the wire object is made with: this peer's proxy, its view of the members, its limits. */
export interface SpriteViewInit {
  /** Where this peer's edge proxy listens, once it does. */
  proxy: ProxyAddress | undefined;
  /** Each member's state by peer id. */
  states: ReadonlyMap<string, string>;
  /** This peer's sprite limits: what a record without its own shows. */
  limits: Readonly<Limits>;
}

/**
 * Builds wire objects for one answer: what all of them share (the proxy's URL parts, member
 * states) is read once, so a listing of a thousand sprites does no work per sprite beyond its row.
 */
export function spriteViews({ proxy, states, limits }: SpriteViewInit): (record: SpriteRecord) => SpriteObject {
  const https = urlMaker(proxy?.https, proxy?.domain);
  const http = urlMaker(proxy?.http, proxy?.domain);
  return (record) => {
    const object: SpriteObject = {
      id: record.id,
      name: record.name,
      organization: record.org,
      status: record.state,
      url: https(record.name) ?? http(record.name),
      url_settings: { auth: record.urlAuth, private_access: 'org_users' },
      labels: record.labels,
      config: { ram_mb: record.ramMb ?? Math.floor(limits.memoryBytes / MiB), cpus: record.cpus ?? limits.cpus, storage_gb: STORAGE_GB },
      environment: record.environment,
      created_at: record.created,
      updated_at: record.updated,
      last_running_at: record.lastRunningAt,
      last_warming_at: record.lastWarmingAt,
      version: record.version,
      owner: record.owner,
      owner_state: states.get(record.owner) ?? 'unknown',
      epoch: record.epoch,
      volume: record.volume,
      services: record.services,
      http_port: record.httpPort,
      http_url: http(record.name),
    };
    if (record.reason) object.reason = record.reason;
    return object;
  };
}

/** Makes a sprite's URL on one proxy listener (`base` like `https://127.0.0.1:7443`), or null without that listener. */
function urlMaker(base: string | null | undefined, domain: string | undefined): (name: string) => string | null {
  if (!base || !domain) return () => null;
  const url = new URL(base);
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  const port = Number(url.port || (scheme === 'https' ? 443 : 80));
  return (name) => `${scheme}://${spriteHost(name, domain, port, scheme)}/`;
}

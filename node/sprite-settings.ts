import type { Limits } from '../vm/index.ts';
import { VM_DEFAULTS } from '../vm/defaults.ts';
import { PeerError } from './errors.ts';

/**
 * What a sprite's creator chooses beyond its name (Sprites' `labels`, `environment` and `config`),
 * the rules they follow, and how they are read back from replicated rows, which any peer of the
 * mesh may have written: a reader keeps what fits the rules and drops the rest, never throws.
 */

const MiB = 1024 ** 2;

/** Labels: at most this many per sprite. */
export const MAX_LABELS = 32;

/** One label: 1-63 of letters, digits and `-_.:=/`, starting and ending with a letter or digit. */
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9._:=/-]{0,61}[A-Za-z0-9])?$/;

/** Message for labels that break the rule. */
export const LABEL_RULE = `labels are at most ${MAX_LABELS} of 1-63 characters of letters, digits, '-', '_', '.', ':', '=' and '/', starting and ending with a letter or digit`;

/** Environment: at most this many variables, this many bytes in all. */
export const MAX_ENV_VARS = 64;
const MAX_ENV_BYTES = 32 * 1024;
const MAX_ENV_VALUE = 4096;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** Message for an environment that breaks the rule. */
export const ENV_RULE = `environment is at most ${MAX_ENV_VARS} variables named like [A-Za-z_][A-Za-z0-9_]* (up to 128 characters), values up to ${MAX_ENV_VALUE} characters without NUL, ${MAX_ENV_BYTES / 1024} KiB in all`;

/** The smallest memory a sprite can ask for, in MiB (as `--sprite-memory`'s minimum). */
export const MIN_RAM_MB = 16;
/** The smallest CPU share a sprite can ask for: a CFS quota of 1 ms per 100 ms. */
export const MIN_CPUS = 0.01;
/** Every sprite's disk: a sparse 100 GiB ext4 (only written blocks take space). */
export const STORAGE_GB = VM_DEFAULTS.diskBytes / 1024 ** 3;

/** A sprite's memory and CPU limits as recorded: what its cgroup gets (capped by the running peer's maximum). */
export interface SpriteResources {
  ramMb: number;
  cpus: number;
}

/** A new sprite as its creator asked for it: name, org, and what Sprites' create adds. */
export interface SpriteSpec {
  name: string;
  /** The caller's org, which the sprite belongs to. */
  org: string;
  /** A base image by name (this project's extension); the peer that creates looks it up. */
  image?: string;
  config?: RequestedConfig;
  environment?: Record<string, string>;
  labels?: string[];
  urlAuth?: string;
  /** Wait (bounded) for room on a full peer instead of failing at once. */
  waitForCapacity?: boolean;
}

/** Sprites' `config` on create, camel-cased. */
export interface RequestedConfig {
  ramMb?: number;
  cpus?: number;
  region?: string;
  storageGb?: number;
}

/** Checks labels from a request: ERR_BAD_REQUEST unless every label fits; duplicates are dropped, order kept. */
export function checkLabels(labels: readonly string[]): string[] {
  const kept = [...new Set(labels)];
  if (kept.length > MAX_LABELS || !kept.every((label) => LABEL.test(label))) throw new PeerError('ERR_BAD_REQUEST', LABEL_RULE);
  return kept;
}

/** Checks an environment from a request: ERR_BAD_REQUEST unless it fits the rule. */
export function checkEnvironment(environment: Readonly<Record<string, string>>): Record<string, string> {
  if (!environmentFits(environment)) throw new PeerError('ERR_BAD_REQUEST', ENV_RULE);
  return { ...environment };
}

/**
 * The resources of a new sprite on this peer: each one asked for, or this peer's own limit, which
 * is also the most it offers (`--sprite-memory`, `--sprite-cpus`). Region and disk size cannot be
 * chosen: a region is refused (the mesh has none) and a disk size other than the one every sprite
 * gets. Throws ERR_BAD_REQUEST naming the field.
 */
export function resourcesFor(config: RequestedConfig, max: Readonly<Limits>): SpriteResources {
  const maxRam = Math.floor(max.memoryBytes / MiB);
  if (config.region !== undefined) throw new PeerError('ERR_BAD_REQUEST', 'config.region cannot be chosen: the mesh has no regions (a sprite runs on whichever peer placement picks); leave it out');
  if (config.storageGb !== undefined && config.storageGb !== STORAGE_GB) {
    throw new PeerError('ERR_BAD_REQUEST', `config.storage_gb cannot be chosen: every sprite's disk is ${STORAGE_GB} GB (sparse); leave it out or give ${STORAGE_GB}`);
  }
  const ramMb = config.ramMb ?? maxRam;
  if (!Number.isInteger(ramMb) || ramMb < MIN_RAM_MB || ramMb > maxRam) {
    throw new PeerError('ERR_BAD_REQUEST', `config.ram_mb must be a whole number from ${MIN_RAM_MB} to ${maxRam} (this peer's maximum)`);
  }
  const cpus = config.cpus ?? max.cpus;
  if (!Number.isFinite(cpus) || cpus < MIN_CPUS || cpus > max.cpus) {
    throw new PeerError('ERR_BAD_REQUEST', `config.cpus must be from ${MIN_CPUS} to ${max.cpus} (this peer's maximum)`);
  }
  return { ramMb, cpus };
}

/**
 * The cgroup limits a sprite runs with on this peer: its recorded resources, each capped by this
 * peer's maximum (a sprite moved from a bigger peer gets what this one offers); the peer's own
 * limits for what the record lacks. The pids limit is always the peer's.
 */
export function limitsFor(resources: Readonly<Partial<SpriteResources>>, max: Readonly<Limits>): Limits {
  return {
    memoryBytes: resources.ramMb === undefined ? max.memoryBytes : Math.min(resources.ramMb * MiB, max.memoryBytes),
    cpus: resources.cpus === undefined ? max.cpus : Math.min(resources.cpus, max.cpus),
    pids: max.pids,
  };
}

/** Labels from a replicated row (JSON text): the list when it fits the rule, else none. */
export function readLabels(text: string | null): string[] {
  const value = parse(text);
  if (!Array.isArray(value) || value.length > MAX_LABELS) return [];
  return value.every((label) => typeof label === 'string' && LABEL.test(label)) ? (value as string[]) : [];
}

/** An environment from a replicated row (JSON text): the object when it fits the rule, else empty. */
export function readEnvironment(text: string | null): Record<string, string> {
  const value = parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  return environmentFits(value as Record<string, unknown>) ? (value as Record<string, string>) : {};
}

/** Memory (MiB) from a replicated row: a whole number in range, else undefined (the peer's default). */
export function readRamMb(value: number | null): number | undefined {
  return value !== null && Number.isSafeInteger(value) && value >= MIN_RAM_MB ? value : undefined;
}

/** CPUs from a replicated row: a finite number in range, else undefined (the peer's default). */
export function readCpus(value: number | null): number | undefined {
  return value !== null && Number.isFinite(value) && value >= MIN_CPUS && value <= 1024 ? value : undefined;
}

function environmentFits(environment: Readonly<Record<string, unknown>>): boolean {
  const entries = Object.entries(environment);
  if (entries.length > MAX_ENV_VARS) return false;
  let bytes = 0;
  for (const [key, value] of entries) {
    if (!ENV_KEY.test(key) || typeof value !== 'string' || value.length > MAX_ENV_VALUE || value.includes('\0')) return false;
    bytes += Buffer.byteLength(key) + Buffer.byteLength(value) + 2;
  }
  return bytes <= MAX_ENV_BYTES;
}

function parse(text: string | null): unknown {
  try {
    return JSON.parse(text ?? 'null');
  } catch {
    return undefined;
  }
}

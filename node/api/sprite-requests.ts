import { URL_AUTH_MODES } from '../../proxy/index.ts';
import { PeerError } from '../errors.ts';
import { checkSpriteName } from '../names.ts';
import type { SpriteUpdate } from '../records/index.ts';
import type { Schema } from '../schema.ts';
import { checkEnvironment, checkLabels, type SpriteSpec } from '../sprite-settings.ts';
import { parseJson } from './http.ts';

/**
 * The bodies of `POST /v1/sprites` and `PUT /v1/sprites/{name}` as `@fly/sprites` sends them
 * (snake_case), read into what the sprite manager and the records take. The schemas bound sizes;
 * the rules of labels and environment (node/sprite-settings.ts) give the messages.
 */

const urlSettingsSchema: Schema = {
  type: 'object',
  properties: {
    auth: { type: 'string', pattern: `^(${URL_AUTH_MODES.join('|')})$`, description: `must be ${URL_AUTH_MODES.join(' or ')}` },
    // Sprites' `admins` (only org admins) has no counterpart: a `sprite` URL admits any token of the org, and admin tokens.
    private_access: { type: 'string', pattern: '^org_users$', description: "can only be org_users: a sprite URL admits every token of the sprite's org (and admin tokens)" },
  },
  additionalProperties: false,
};

const labelsSchema: Schema = { type: 'array', items: { type: 'string', maxLength: 256 }, maxItems: 1024 };

const createSchema: Schema = {
  type: 'object',
  required: ['name'],
  properties: {
    // The name's rule is checked on its own (ERR_BAD_NAME).
    name: { type: 'string', maxLength: 256 },
    image: { type: 'string', maxLength: 256 },
    config: {
      type: 'object',
      properties: {
        ram_mb: { type: 'integer', minimum: 1, maximum: 2 ** 40 },
        cpus: { type: 'number', minimum: 0, maximum: 1024 },
        region: { type: 'string', maxLength: 256 },
        storage_gb: { type: 'integer', minimum: 0, maximum: 2 ** 40 },
      },
      additionalProperties: false,
    },
    environment: { type: 'object', additionalProperties: { type: 'string', maxLength: 65536 }, maxProperties: 1024 },
    url_settings: urlSettingsSchema,
    labels: labelsSchema,
    wait_for_capacity: { type: 'boolean' },
    runtime: { type: 'string', pattern: '^default$', description: "can only be default: every sprite runs the one runtime (choose a base image with image)" },
  },
  additionalProperties: false,
};

const updateSchema: Schema = {
  type: 'object',
  properties: { url_settings: urlSettingsSchema, labels: labelsSchema },
  additionalProperties: false,
};

interface CreateBody {
  name: string;
  image?: string;
  config?: { ram_mb?: number; cpus?: number; region?: string; storage_gb?: number };
  environment?: Record<string, string>;
  url_settings?: { auth?: string };
  labels?: string[];
  wait_for_capacity?: boolean;
}

/** A create body for a sprite of `org`; ERR_BAD_NAME or ERR_BAD_REQUEST when it breaks a rule. */
export function parseCreate(body: Buffer, org: string): SpriteSpec {
  const parsed = parseJson<CreateBody>(body, createSchema);
  checkSpriteName(parsed.name);
  const spec: SpriteSpec = { name: parsed.name, org, waitForCapacity: parsed.wait_for_capacity === true };
  if (parsed.image !== undefined) spec.image = parsed.image;
  if (parsed.config) spec.config = { ramMb: parsed.config.ram_mb, cpus: parsed.config.cpus, region: parsed.config.region, storageGb: parsed.config.storage_gb };
  if (parsed.environment) spec.environment = checkEnvironment(parsed.environment);
  if (parsed.labels) spec.labels = checkLabels(parsed.labels);
  if (parsed.url_settings?.auth !== undefined) spec.urlAuth = parsed.url_settings.auth;
  return spec;
}

/** An update body: the URL auth and labels to set (at least one); ERR_BAD_REQUEST otherwise. */
export function parseUpdate(body: Buffer): SpriteUpdate {
  const parsed = parseJson<{ url_settings?: { auth?: string }; labels?: string[] }>(body, updateSchema);
  if (parsed.url_settings === undefined && parsed.labels === undefined) throw new PeerError('ERR_BAD_REQUEST', 'give url_settings or labels (or both)');
  const update: SpriteUpdate = {};
  if (parsed.url_settings?.auth !== undefined) update.urlAuth = parsed.url_settings.auth;
  if (parsed.labels !== undefined) update.labels = checkLabels(parsed.labels);
  return update;
}

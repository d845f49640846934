import type { ServerResponse } from 'node:http';
import type { Schema } from '../../schema.ts';
import type { SpriteManager } from '../../sprites.ts';
import type { CheckpointView } from '../../sprites/checkpoints.ts';
import { PeerError } from '../../errors.ts';
import { toApiError } from '../errors.ts';
import { readJson, sendJson } from '../http.ts';
import { startNdjson } from '../ndjson.ts';
import { NAME, type Route } from '../router.ts';

/** What the checkpoint routes work on. */
export type CheckpointSprites = Pick<SpriteManager, 'checkpoint' | 'checkpointQuota' | 'checkpoints' | 'deleteCheckpoint' | 'restore'>;

const checkpointSchema: Schema = {
  type: 'object',
  properties: { comment: { type: 'string', maxLength: 1024 } },
  additionalProperties: false,
};

const CHECKPOINT = `^/v1/sprites/${NAME}/checkpoints/(?<id>[^/]+)`;

/** A checkpoint as Sprites' SDKs read it. */
function wire(view: CheckpointView): object {
  return {
    id: view.id, create_time: new Date(view.created).toISOString(), comment: view.comment, is_auto: false,
    ...(view.source === undefined ? {} : { source_id: view.source }), history: view.history,
  };
}

/**
 * Writes the progress of a checkpoint operation as Sprites' StreamMessage lines (`info`, and
 * `error` with the reason when it fails); the stream's end is the operation's end.
 */
async function progressStream(res: ServerResponse, work: (info: (data: string, extra?: object) => void) => Promise<void>): Promise<void> {
  const send = startNdjson(res);
  const info = (data: string, extra: object = {}): void => send({ type: 'info', data, time: new Date().toISOString(), ...extra });
  try {
    await work(info);
  } catch (error) {
    const failed = toApiError(error);
    send({ type: 'error', error: failed.message, code: failed.code, time: new Date().toISOString() });
  }
  res.end();
}

/** Routes of a sprite's checkpoints: take (POST /checkpoint), list, show, delete and restore. */
export function checkpointRoutes(sprites: CheckpointSprites): Route[] {
  /** The checkpoint, or ERR_CHECKPOINT_NOT_FOUND (also the check that the sprite takes checkpoints). */
  const find = async (name: string, id: string): Promise<CheckpointView> => {
    const found = (await sprites.checkpoints(name)).find((c) => c.id === id);
    if (!found) throw new PeerError('ERR_CHECKPOINT_NOT_FOUND', `no checkpoint ${id}`);
    return found;
  };
  return [
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoint$`),
      handler: async ({ req, res, params }) => {
        const body = await readJson<{ comment?: string }>(req, checkpointSchema);
        // Fails with a status before the stream starts when the sprite is missing, takes no checkpoints, or its org is at a quota.
        await sprites.checkpoints(params.name!);
        sprites.checkpointQuota(params.name!);
        await progressStream(res, async (info) => {
          info('Creating checkpoint...');
          const created = await sprites.checkpoint(params.name!, body.comment ?? '');
          info(`Checkpoint ${created.id} created`, { id: created.id });
        });
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints$`),
      handler: async ({ res, params, url }) => {
        const all = await sprites.checkpoints(params.name!);
        // `history=ID`: that checkpoint and the ones it descends from.
        const of = url.searchParams.get('history');
        let shown = all;
        if (of) {
          const target = all.find((c) => c.id === of);
          const line = new Set(target ? [of, ...target.history] : []);
          shown = all.filter((c) => line.has(c.id));
        }
        sendJson(res, 200, shown.map(wire));
      },
    },
    {
      method: 'GET',
      auth: 'org',
      pattern: new RegExp(`${CHECKPOINT}$`),
      handler: async ({ res, params }) => sendJson(res, 200, wire(await find(params.name!, params.id!))),
    },
    {
      method: 'DELETE',
      auth: 'org',
      pattern: new RegExp(`${CHECKPOINT}$`),
      handler: async ({ res, params }) => {
        await sprites.deleteCheckpoint(params.name!, params.id!);
        res.writeHead(204).end();
      },
    },
    {
      method: 'POST',
      auth: 'org',
      pattern: new RegExp(`${CHECKPOINT}/restore$`),
      handler: async ({ res, params }) => {
        await find(params.name!, params.id!);
        await progressStream(res, async (info) => {
          const record = await sprites.restore(params.name!, params.id!, (step) => info(step));
          info(`Restored to ${params.id}; the sprite is ${record.state}`, { state: record.state });
        });
      },
    },
  ];
}

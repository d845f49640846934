import type { Schema } from '../../schema.ts';
import type { SpriteManager } from '../../sprites.ts';
import { PeerError } from '../../errors.ts';
import { readJson, sendJson } from '../http.ts';
import { NAME, type Route } from '../router.ts';

/** What the checkpoint routes work on. */
export type CheckpointSprites = Pick<SpriteManager, 'checkpoint' | 'checkpoints' | 'deleteCheckpoint' | 'restore'>;

const checkpointSchema: Schema = {
  type: 'object',
  properties: { comment: { type: 'string', maxLength: 1024 } },
  additionalProperties: false,
};

const CHECKPOINT = `^/v1/sprites/${NAME}/checkpoints/(?<id>[^/]+)`;

/** Routes under /v1/sprites/{name}/checkpoints: take, list, show, delete and restore. */
export function checkpointRoutes(sprites: CheckpointSprites): Route[] {
  return [
    {
      method: 'POST',
      pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints$`),
      handler: async ({ req, res, params }) => {
        const body = await readJson<{ comment?: string }>(req, checkpointSchema);
        sendJson(res, 201, await sprites.checkpoint(params.name!, body.comment ?? ''));
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/v1/sprites/${NAME}/checkpoints$`),
      handler: async ({ res, params }) => sendJson(res, 200, { checkpoints: await sprites.checkpoints(params.name!) }),
    },
    {
      method: 'GET',
      pattern: new RegExp(`${CHECKPOINT}$`),
      handler: async ({ res, params }) => {
        const found = (await sprites.checkpoints(params.name!)).find((c) => c.id === params.id);
        if (!found) throw new PeerError('ERR_CHECKPOINT_NOT_FOUND', `no checkpoint ${params.id}`);
        sendJson(res, 200, found);
      },
    },
    {
      method: 'DELETE',
      pattern: new RegExp(`${CHECKPOINT}$`),
      handler: async ({ res, params }) => {
        await sprites.deleteCheckpoint(params.name!, params.id!);
        res.writeHead(204).end();
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`${CHECKPOINT}/restore$`),
      handler: async ({ res, params }) => sendJson(res, 200, await sprites.restore(params.name!, params.id!)),
    },
  ];
}

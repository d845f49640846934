/**
 * Per-sandbox host id ranges. Disks keep the ids images are built with (the sprite's root stored
 * as one fixed host id, `rootHostId`); each running sandbox claims its own 65536-id range on the
 * host, its user namespace maps the sprite's ids there, and sprite-init mounts the disk through an
 * idmapped mount that shows stored ids in that range (`init/idmap-mount.ts`). So no two sprites
 * on a host share a host uid, and a disk moving between peers needs no rewrite.
 *
 * A claim is a file named after its slot under a host-wide directory, made with O_EXCL and
 * holding the claiming process's pid: peers on one host never share a slot. A claim whose process
 * is gone (a killed peer: its sandboxes died with it) is taken over.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from './command.ts';
import { VmError } from './errors.ts';

const CLAIMS_DIR = '/run/sprite-ids';
/** Ids per sandbox: a sprite's uids and gids 0..65535. */
export const ID_RANGE = 65536;
// Slots start above the disks' stored range (100000..165535 sits in slots 1 and 2) and end below
// the largest uid (2^32 - 1 is "no id").
const FIRST_SLOT = 4;
const LAST_SLOT = 65534;
const ATTEMPTS = 200;

/** A claimed range of host ids. */
export interface IdClaim {
  /** Host id of the sprite's root. */
  hostId: number;
  release(): Promise<void>;
}

const randomSlot = (): number => FIRST_SLOT + Math.floor(Math.random() * (LAST_SLOT - FIRST_SLOT + 1));

/** Claims a free range of ID_RANGE host ids for one sandbox (`dir` and `pick` are for tests). */
export async function claimIds(dir = CLAIMS_DIR, pick = randomSlot): Promise<IdClaim> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const slot = pick();
    const file = join(dir, String(slot));
    if ((await create(file)) || ((await takeStale(file)) && (await create(file)))) {
      return { hostId: slot * ID_RANGE, release: () => rm(file, { force: true }) };
    }
  }
  throw new VmError('ERR_SANDBOX_START', `no free host id range after ${ATTEMPTS} tries in ${dir}`);
}

async function create(file: string): Promise<boolean> {
  try {
    const handle = await open(file, 'wx', 0o600);
    await handle.writeFile(String(process.pid));
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

/** Removes a claim whose process is gone; false if it is live (or another peer took it meanwhile). */
async function takeStale(file: string): Promise<boolean> {
  const holder = Number(await readFile(file, 'utf8').catch(() => ''));
  if (!(holder > 0) || processAlive(holder)) return false;
  // Renamed away first, so of two peers taking over one stale claim only one removes it.
  const aside = `${file}.stale.${process.pid}.${Math.random().toString(36).slice(2)}`;
  try {
    await rename(file, aside);
  } catch {
    return false;
  }
  const moved = Number(await readFile(aside, 'utf8').catch(() => ''));
  if (moved !== holder) {
    // A fresh claim was made between the read and the rename: it goes back.
    await rename(aside, file).catch(() => undefined);
    return false;
  }
  await rm(aside, { force: true });
  return true;
}

import { chmod, copyFile, link, mkdir, readdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { stripTypeScriptTypes } from 'node:module';
import { basename, join } from 'node:path';
import { exists, runCommand } from './command.ts';
import { linkBusybox } from './rootfs.ts';

const SPRITE_ENV_SOURCE = new URL('./env/sprite-env.ts', import.meta.url).pathname;
const FS_AGENT_SOURCE = new URL('./fs-agent/', import.meta.url).pathname;

/**
 * Prepares the directory mounted read-only at /.sprite/bin in every sprite: `sprite-env`, the
 * Node runtime that runs it and the shared libraries that runtime needs, so it works on any
 * root filesystem (a static busybox image has no libc), and a static busybox with its applets.
 * /.sprite/bin comes last in a sprite's PATH, so the applets only fill gaps: a Debian minbase root
 * (the default image) gets `httpd`, `wget`, `nc` and `vi`, which it lacks, while its own tools win.
 * Returns the directory; reuses it when built.
 */
export async function ensureTools(dir: string): Promise<string> {
  const marker = join(dir, '.complete');
  if (await exists(marker)) {
    // The script may have changed with the software; the runtime is fixed per data dir.
    await copyFile(SPRITE_ENV_SOURCE, join(dir, 'sprite-env.ts'));
    await copyFsAgent(dir);
    if (!(await exists(join(dir, 'busybox')))) await addBusybox(dir);
    return dir;
  }
  const staging = `${dir}.${process.pid}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(join(staging, 'lib'), { recursive: true });
  await linkOrCopy(process.execPath, join(staging, 'node'));
  for (const library of await sharedLibraries(process.execPath)) await linkOrCopy(library, join(staging, 'lib', basename(library)));
  await copyFile(SPRITE_ENV_SOURCE, join(staging, 'sprite-env.ts'));
  await copyFsAgent(staging);
  const loader = (await sharedLibraries(process.execPath)).map((l) => basename(l)).find((l) => l.startsWith('ld-linux')) ?? 'ld-linux-x86-64.so.2';
  await writeFile(
    join(staging, 'sprite-env'),
    `#!/bin/sh\nexec /.sprite/bin/lib/${loader} --library-path /.sprite/bin/lib /.sprite/bin/node --disable-warning=ExperimentalWarning /.sprite/bin/sprite-env.ts "$@"\n`,
  );
  await chmod(join(staging, 'sprite-env'), 0o755);
  await addBusybox(staging);
  await writeFile(join(staging, '.complete'), '');
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  return dir;
}

/**
 * Puts the sprite agent (vm/fs-agent) at fs-agent/ as JavaScript, staged first so no agent starts
 * from a half-copied directory. Stripped here once rather than by every agent at its start: Node's
 * TypeScript stripper would stay in each agent's memory (about 20 MiB of its 30 MiB private).
 */
async function copyFsAgent(dir: string): Promise<void> {
  const staging = join(dir, `.fs-agent.${process.pid}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging);
  for (const name of await readdir(FS_AGENT_SOURCE)) {
    if (!name.endsWith('.ts')) continue;
    const source = stripTypes(await readFile(join(FS_AGENT_SOURCE, name), 'utf8'));
    await writeFile(join(staging, name.replace(/\.ts$/, '.js')), source.replace(/(['"])(\.\/[\w.-]+)\.ts\1/g, '$1$2.js$1'));
  }
  await writeFile(join(staging, 'package.json'), '{"type":"module"}\n');
  await rm(join(dir, 'fs-agent'), { recursive: true, force: true });
  await rename(staging, join(dir, 'fs-agent'));
}

/** Adds busybox and a link per applet, except names the directory already has (node, sprite-env). */
async function addBusybox(dir: string): Promise<void> {
  await linkBusybox(dir, new Set(await readdir(dir)));
}

async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await runCommand('ldd', [binary]);
  const paths: string[] = [];
  for (const line of out.split('\n')) {
    const match = /(\/\S+)\s+\(0x/.exec(line);
    if (match?.[1]) paths.push(match[1]);
  }
  return paths;
}

async function linkOrCopy(link_: string, target: string): Promise<void> {
  // Library paths are often symlinks, which would dangle inside the sprite.
  const source = await realpath(link_);
  try {
    await link(source, target);
  } catch {
    await copyFile(source, target);
  }
}

/**
 * Node's type stripper, without the one-time "experimental" warning it prints on stderr: a peer
 * started without --disable-warning would show it to the operator, who can do nothing about it.
 */
function stripTypes(code: string): string {
  const emitWarning = process.emitWarning;
  process.emitWarning = () => undefined;
  try {
    return stripTypeScriptTypes(code);
  } finally {
    process.emitWarning = emitWarning;
  }
}

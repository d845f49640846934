/**
 * sprite-init: the first process of a sprite's outer sandbox (pid 1 of its pid namespace,
 * inside its network namespace, still root on the host). It creates the inner container,
 * supervises services and exec sessions, and serves three sockets: control (the peer),
 * /.sprite/api.sock (user code) and the HTTP port socket (the proxy).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { runCommand } from '../command.ts';
import { ControlClient } from '../control.ts';
import { decodeMessage, messageFrame, readOneFrame } from '../frames.ts';
import { CheckpointDir } from './checkpoints.ts';
import { coded } from './errors.ts';
import { STAGE, type InitConfig } from './config.ts';
import { execHandlers } from './exec-ops.ts';
import { accept, STREAMING, type Handler, type Request } from './ops.ts';
import { forwardToPort } from './forward.ts';
import { idmapMount } from './idmap-mount.ts';
import { SpriteAgents, splice } from './agents.ts';
import { serveInsideApi } from './inside-api.ts';
import { Runc } from './runc.ts';
import { PortWatcher } from './ports.ts';
import { serviceHandlers } from './service-ops.ts';
import { ServiceManager } from './services.ts';
import { Sessions } from './sessions.ts';

const VERSION = '0.1.0';

async function main(): Promise<void> {
  const config = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as InitConfig;
  const runc = new Runc({ root: config.runcRoot, bundle: config.bundle, id: config.id, logFile: config.runcLog, pidFile: join(dirname(config.runcRoot), 'container.pid') });
  const log = (line: string): void => void process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  const services = new ServiceManager(runc, config.servicesFile, join(config.spriteDir, 'logs/services'), join(dirname(config.controlSocket), 'services'), log);
  await services.seedLogs();
  const ports = new PortWatcher();
  const agents = new SpriteAgents({ runcRoot: config.runcRoot, id: config.id, bundle: config.bundle, toolsDir: STAGE.toolsDir, log });
  const sessions = new Sessions(runc, ports, agents);
  let hostname: string | null = null;
  let running = false;

  for (const path of [config.controlSocket, config.httpSocket, join(config.spriteDir, 'api.sock')]) rmSync(path, { force: true });
  await stageMounts(config);
  const checkpoints = await CheckpointDir.stage(config.idmapNamespace === undefined ? undefined : STAGE.idmap);
  await runc.create();
  await dropHostMounts(config.privateDirs);

  const shutdown = async (): Promise<void> => {
    sessions.killAll();
    await agents.close();
    await services.stopAll();
    await runc.destroy();
  };

  const handlers: Record<string, Handler> = {
    status: () => ({ running, hostname, active: sessions.active, execs: sessions.started }),
    start: async (request) => {
      if (running) return { running };
      hostname = requireString(request.hostname, 'hostname');
      await setHostname(runc, hostname);
      await runc.start();
      running = true;
      log(`started as ${hostname}`);
      services.activate();
      // The agent starts with the sprite, not in the warm pool (a pool entry runs nothing), so the
      // first exec of a created or woken sprite is already a fork rather than a `runc exec`.
      agents.enable();
      return { running };
    },
    shutdown: async () => {
      await shutdown();
      setImmediate(() => process.exit(0));
      return null;
    },
    // exec, attach, sessions.list, sessions.kill, ports.watch, forward
    ...execHandlers(sessions, ports),
    ...serviceHandlers(services),
    'checkpoints.mount': async (request) => {
      await checkpoints.mount(request.id, request.device);
      return null;
    },
    'checkpoints.unmount': async (request) => {
      await checkpoints.unmount(request.id);
      return null;
    },
    // The filesystem API: the connection is spliced to the sprite agent inside the container (agents.ts).
    fs: async (request, socket) => {
      if (!running) throw coded('ERR_SPRITE_NOT_RUNNING', 'the sprite is not running');
      const agent = await agents.connect(request.root === true);
      splice(socket, agent);
      return accept(socket);
    },
  };

  const control = net.createServer((socket) => {
    socket.on('error', () => undefined);
    void readOneFrame(socket)
      .then(async (payload) => {
        const request = decodeMessage(payload) as Request;
        const handler = typeof request?.op === 'string' ? handlers[request.op] : undefined;
        if (!handler) throw coded('ERR_BAD_REQUEST', `unknown op ${String(request?.op)}`);
        const result = await handler(request, socket);
        if (result !== STREAMING) socket.end(messageFrame({ ok: true, result }));
      })
      .catch((error: unknown) => {
        const code = (error as { code?: string }).code;
        socket.end(messageFrame({ ok: false, error: { code: code?.startsWith('ERR_') ? code : 'ERR_INIT', message: (error as Error).message } }));
      });
  });
  control.listen(config.controlSocket);

  // The service that claims the HTTP port says where the sprite's URL goes.
  const http = net.createServer((socket) => forwardToPort(socket, services.httpPort() ?? config.httpPort));
  http.listen(config.httpSocket);

  mkdirSync(join(config.spriteDir, 'logs'), { recursive: true });
  serveInsideApi(join(config.spriteDir, 'api.sock'), {
    services,
    info: () => ({ name: hostname, httpPort: config.httpPort, version: VERSION }),
    peer: config.peerSocket ? new ControlClient(config.peerSocket, 'the peer') : undefined,
    checkpoints,
  });

  await Promise.all([listening(control), listening(http)]);
  process.on('SIGTERM', () => void shutdown().finally(() => process.exit(0)));
  // The peer waits for this line: the sandbox is up and the container created.
  process.stdout.write('ready\n');
  log('sandbox ready, container created');
}

/** Mounts the sprite's pieces at STAGE in this sandbox's own mount namespace (invisible to the host). */
async function stageMounts(config: InitConfig): Promise<void> {
  await runCommand('mount', ['-t', 'tmpfs', '-o', 'mode=755,size=64k', 'sprite-stage', STAGE.dir]);
  for (const dir of [STAGE.rootfs, STAGE.spriteDir, STAGE.toolsDir]) mkdirSync(dir);
  if (config.idmapNamespace) {
    writeFileSync(STAGE.idmap, '');
    await runCommand('mount', ['--bind', config.idmapNamespace, STAGE.idmap]);
    await idmapMount(config.rootfs, STAGE.rootfs, STAGE.idmap);
  } else {
    await runCommand('mount', ['--bind', config.rootfs, STAGE.rootfs]);
  }
  await runCommand('mount', ['--bind', config.spriteDir, STAGE.spriteDir]);
  await runCommand('mount', ['--bind', '-o', 'ro', config.toolsDir, STAGE.toolsDir]);
  if (config.resolvConf !== undefined) writeFileSync(STAGE.resolvConf, config.resolvConf, { mode: 0o644 });
}

/**
 * Lazily unmounts, in this namespace only, what sprite-init must not hold: every mount under
 * `dirs`, and anything that pins a disk or namespace of another sprite or peer on this host (loop
 * devices, FUSE mounts, pinned namespaces). A copy held here would keep them alive after their
 * owner lets go. The staged mounts under STAGE.dir stay.
 */
async function dropHostMounts(dirs: string[]): Promise<void> {
  const unescape = (text: string): string => text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  const points: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    const point = left?.split(' ')[4];
    const [fstype = '', source = ''] = right?.split(' ') ?? [];
    if (!point || point === '/' || point === STAGE.dir || point.startsWith(`${STAGE.dir}/`)) continue;
    const mountPoint = unescape(point);
    // Strictly inside: the data dir itself may be a mount (a dedicated disk) that sprite-init uses.
    const private_ = dirs.some((dir) => mountPoint.startsWith(`${dir}/`));
    if (private_ || fstype === 'nsfs' || fstype.startsWith('fuse') || source.startsWith('/dev/loop')) points.push(mountPoint);
  }
  points.sort((a, b) => b.length - a.length);
  for (const point of points) await runCommand('umount', ['-l', point]).catch(() => undefined);
}

async function setHostname(runc: Runc, hostname: string): Promise<void> {
  // The container has its own UTS namespace, created before the sprite had a name.
  await runCommand('nsenter', ['-t', String(runc.pid), '-u', 'hostname', hostname]);
}

function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw coded('ERR_BAD_REQUEST', `${field} must be a non-empty string`);
  return value;
}

function listening(server: net.Server): Promise<void> {
  return server.listening ? Promise.resolve() : new Promise((resolve) => server.once('listening', () => resolve()));
}

main().catch((error: unknown) => {
  process.stderr.write(`sprite-init: ${(error as Error).message}\n`);
  process.exit(1);
});

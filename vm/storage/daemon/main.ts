/**
 * Entry point of the storage daemon process: one per data dir, started by {@link StorageDaemon}
 * (client.ts) under the IO-flusher helper, driven over the Node IPC channel.
 *
 *   node vm/storage/daemon/main.ts '<StorageDaemonConfig as JSON>'
 */
import { StorageError, describe } from '../errors.ts';
import { createLogger } from '../../logger.ts';
import { ioFlusherActive, protectFromOom } from './ioflusher.ts';
import { StorageService } from './service.ts';
import { handleRequest, type DaemonConfig, type DaemonReply, type DaemonRequest } from './protocol.ts';

const config = JSON.parse(process.argv[2] ?? '{}') as DaemonConfig;
const logger = createLogger({ unit: 'storage', pid: process.pid });
await protectFromOom();
const ioFlusher = await ioFlusherActive();
if (!ioFlusher) {
  logger.warn('running without PR_SET_IO_FLUSHER; relying on direct I/O and cgroup separation (see daemon/ioflusher.ts)', {
    reason: process.env.SPRITE_IO_FLUSHER ?? 'not started by the helper',
  });
}

let service: StorageService;
try {
  service = await StorageService.start({ ...config, logger });
} catch (error) {
  logger.error('storage service failed to start', { error: describe(error) });
  process.exit(1);
}
service.ioFlusher = ioFlusher;

let stopping: Promise<void> | undefined;
const shutdown = (reason: string): Promise<void> => {
  stopping ??= (async () => {
    logger.info('storage daemon stopping', { reason });
    await service.stop().catch((error) => logger.error('stop failed', { error: describe(error) }));
  })();
  return stopping;
};

process.on('message', (message: DaemonRequest) => {
  void (async () => {
    let reply: DaemonReply;
    try {
      if (message.op === 'stop') {
        await shutdown('asked to stop');
        reply = { id: message.id, value: true };
      } else {
        reply = { id: message.id, value: await handleRequest(service, message) };
      }
    } catch (error) {
      const code = (error as StorageError).code ?? 'ERR_DAEMON';
      reply = { id: message.id, error: { code, message: (error as Error).message ?? String(error), fields: (error as StorageError).fields ?? {} } };
    }
    if (process.connected) process.send!(reply);
    if (message.op === 'stop') process.disconnect();
  })();
});
// The peer is gone: flush and unmount what can be, then exit.
process.on('disconnect', () => void shutdown('parent disconnected').then(() => process.exit(0)));
process.on('SIGTERM', () => void shutdown('SIGTERM').then(() => process.exit(0)));
process.send!({ ready: { pid: process.pid, ioFlusher } });

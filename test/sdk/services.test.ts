import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServiceLogEvent } from '@fly/sprites';
import { eventually } from '../helpers/peer.ts';
import { getViaSocket } from '../helpers/socket.ts';
import { collect, twoPeers, type TwoPeers } from './helpers.ts';

const types = (events: ServiceLogEvent[]): string[] => events.map((e) => e.type);

describe('services through the SDK, on two peers', () => {
  let mesh: TwoPeers;
  let spriteId: string;
  before(async () => {
    mesh = await twoPeers('svc');
    spriteId = (await mesh.owner.api('GET', '/v1/sprites/svc')).body.id;
    const page = await mesh.owner.cli(['exec', 'svc', '--', 'sh', '-c', 'mkdir -p /www && echo "hello from web" > /www/index.html']);
    assert.equal(page.code, 0, page.stderr);
  });
  after(() => mesh?.stop());

  test('createService streams the first output, typed, through the peer that does not own the sprite', async () => {
    const events = await collect(await mesh.viaOther.createService('db', { cmd: 'sh', args: ['-c', 'echo db up; echo db warn >&2; exec sleep 1000'] }, '5s'));
    assert.ok(types(events).includes('started'), JSON.stringify(events));
    assert.ok(events.some((e) => e.type === 'stdout' && e.data === 'db up\n'), JSON.stringify(events));
    assert.ok(events.some((e) => e.type === 'stderr' && e.data === 'db warn\n'), JSON.stringify(events));
    assert.ok(events.every((e) => Number.isInteger(e.timestamp) && e.timestamp > 0));
    const last = events.at(-1)!;
    assert.equal(last.type, 'complete');
    assert.deepEqual(last.logFiles, { stdout: '/.sprite/logs/services/db.log', stderr: '/.sprite/logs/services/db.log' });
  });

  test('a service that needs another starts after it; http_port routes the sprite URL to it', async () => {
    const events = await collect(await mesh.viaOwner.createService('web', {
      cmd: 'httpd', args: ['-f', '-p', '8081', '-h', '/www'], needs: ['db'], httpPort: 8081, env: { GREETING: 'hi' }, dir: '/www',
    }, '0s'));
    assert.equal(events.at(-1)!.type, 'complete');
    const web = await eventually(async () => {
      const got = await mesh.viaOther.getService('web');
      return got.state?.status === 'running' ? got : undefined;
    }, 20_000, 'web running');
    assert.deepEqual({ needs: web.needs, httpPort: web.httpPort, env: web.env, dir: web.dir, cmd: web.cmd }, { needs: ['db'], httpPort: 8081, env: { GREETING: 'hi' }, dir: '/www', cmd: 'httpd' });
    assert.ok(Number.isInteger(web.state!.pid) && web.state!.pid! > 0);
    const db = await mesh.viaOther.getService('db');
    assert.ok(Date.parse(db.state!.startedAt!) <= Date.parse(web.state!.startedAt!), 'db started before web');
    const socket = join(mesh.owner.dataDir, 'sprites', spriteId, 'run', 'http.sock');
    assert.equal(await eventually(() => getViaSocket(socket).catch(() => undefined), 20_000, 'httpd to answer'), 'hello from web\n');
  });

  test('listServices shows definitions and states; the record mirrors the names', async () => {
    const listed = await mesh.viaOther.listServices();
    assert.deepEqual(listed.map((s) => [s.name, s.state?.status, s.state?.restartCount]), [['db', 'running', 0], ['web', 'running', 0]]);
    assert.deepEqual(listed[0]!.args, ['-c', 'echo db up; echo db warn >&2; exec sleep 1000']);
    assert.deepEqual(listed[0]!.needs, []);
    await eventually(async () => {
      const services = (await mesh.other.api('GET', '/v1/sprites/svc')).body.services as string[];
      return services.join() === 'db,web' ? true : undefined;
    }, 15_000, 'the mirrored names on the other peer');
  });

  test('bad needs are a 400, a missing service a 404, deleting a needed service a conflict', async () => {
    await assert.rejects(mesh.viaOther.createService('orphan', { cmd: 'true', needs: ['nope'] }), /status 400.*ERR_BAD_REQUEST.*needs nope/);
    await assert.rejects(mesh.viaOther.createService('db', { cmd: 'sleep', args: ['1000'], needs: ['web'] }), /status 400.*cycle: db -> web -> db/);
    await assert.rejects(mesh.viaOther.createService('loop', { cmd: 'true', needs: ['loop'] }), /status 400.*cycle/);
    await assert.rejects(mesh.viaOther.getService('nope'), /Service not found.*ERR_SERVICE_NOT_FOUND/);
    await assert.rejects(mesh.viaOther.stopService('nope'), /Service not found/);
    await assert.rejects(mesh.viaOther.signalService('nope', 'TERM'), /Service not found/);
    await assert.rejects(mesh.viaOther.deleteService('db'), /Service conflict.*ERR_SERVICE_IN_USE/);
    await assert.rejects(mesh.viaOther.createService('web2', { cmd: 'true', httpPort: 8080 }), /Service conflict.*ERR_HTTP_PORT_TAKEN/);
    assert.deepEqual((await mesh.viaOther.listServices()).map((s) => s.name), ['db', 'web']);
  });

  test('stopService stops with a timeout and streams the stop; a stopped service cannot be stopped again', async () => {
    const events = await collect(await mesh.viaOther.stopService('web', '5s'));
    assert.deepEqual(types(events).filter((t) => t !== 'stdout' && t !== 'stderr'), ['stopping', 'exit', 'stopped', 'complete']);
    const web = await mesh.viaOther.getService('web');
    assert.equal(web.state?.status, 'stopped');
    assert.equal(web.state?.pid, undefined);
    await assert.rejects(mesh.viaOther.stopService('web'), /Service not running.*ERR_SERVICE_NOT_RUNNING/);
    await assert.rejects(mesh.viaOther.signalService('web', 'HUP'), /Service not running/);
  });

  test('startService and restartService bring it back with a new process', async () => {
    await collect(await mesh.viaOther.startService('web', '0s'));
    const started = await eventually(async () => {
      const got = await mesh.viaOther.getService('web');
      return got.state?.status === 'running' ? got : undefined;
    }, 20_000, 'web running again');
    const events = await collect(await mesh.viaOwner.restartService('web', '0s'));
    assert.deepEqual(types(events).slice(0, 3), ['stopping', 'exit', 'stopped']);
    const restarted = await eventually(async () => {
      const got = await mesh.viaOther.getService('web');
      return got.state?.status === 'running' ? got : undefined;
    }, 20_000, 'web running after the restart');
    assert.notEqual(restarted.state!.pid, started.state!.pid);
  });

  test('signalService delivers the signal: TERM ends db and the supervisor restarts it', async () => {
    const before = await mesh.viaOther.getService('db');
    await assert.rejects(mesh.viaOther.signalService('db', 'BOGUS'), /Invalid signal/);
    await mesh.viaOther.signalService('db', 'TERM');
    const after = await eventually(async () => {
      const got = await mesh.viaOther.getService('db');
      return got.state!.restartCount! >= 1 && got.state?.status === 'running' ? got : undefined;
    }, 20_000, 'db restarted');
    assert.notEqual(after.state!.pid, before.state!.pid);
  });

  test('getServiceLogs returns the recent output as typed events, bounded by lines', async () => {
    const events = await collect(await mesh.viaOther.getServiceLogs('db', { lines: 10 }));
    assert.ok(events.some((e) => e.type === 'stdout' && e.data === 'db up\n'), JSON.stringify(events));
    assert.ok(events.some((e) => e.type === 'stderr' && e.data === 'db warn\n'), JSON.stringify(events));
    assert.equal(events.at(-1)!.type, 'complete');
    const one = await collect(await mesh.viaOwner.getServiceLogs('db', { lines: 1 }));
    assert.equal(one.filter((e) => e.type === 'stdout' || e.type === 'stderr').length, 1);
    await assert.rejects(mesh.viaOther.getServiceLogs('nope'), /status 404/);
  });

  test('the logs of a stopped sprite come from its log file, without starting it', async () => {
    assert.equal((await mesh.owner.cli(['stop', 'svc'])).code, 0);
    const events = await collect(await mesh.viaOther.getServiceLogs('db', { lines: 50 }));
    // The file does not say which stream a line came from: all of it reads as stdout.
    assert.ok(events.some((e) => e.type === 'stdout' && e.data === 'db warn\n'), JSON.stringify(events));
    assert.equal(events.at(-1)!.type, 'complete');
    assert.equal((await mesh.other.api('GET', '/v1/sprites/svc')).body.state, 'stopped');
    await assert.rejects(mesh.viaOther.getServiceLogs('nope'), /status 404.*ERR_SERVICE_NOT_FOUND/);
    assert.equal((await mesh.owner.cli(['start', 'svc'])).code, 0);
  });

  test('deleteService removes them, dependent first', async () => {
    await mesh.viaOther.deleteService('web');
    await mesh.viaOwner.deleteService('db');
    assert.deepEqual(await mesh.viaOther.listServices(), []);
    await assert.rejects(mesh.viaOther.deleteService('db'), /Service not found/);
  });
});

/**
 * An exec without a terminal run by the sprite agent (vm/fs-agent/exec.ts) on a connection of its
 * own: no `runc exec` per command. The agent is the sprite's (its user can kill, trace or replace it),
 * so nothing it sends is trusted: frames are bounded and checked, the command's pid it names is
 * signalled only once /proc shows it is the agent's child in the container, and a connection that
 * ends without a status ends the exec with status 255 and a message on stderr.
 */
import type { Socket } from 'node:net';
import { EXEC, ExecFrames, execFrame, MAX_EXEC_FRAME } from '../fs-agent/exec-wire.ts';
import { signalGroup, type ExecProcess, type OutputStream, type SignalName } from './exec-process.ts';
import { childInContainer } from './procfs.ts';
import type { ExecSpec } from './runc.ts';

// The agent names the command's pid (or ends the exec) this soon, or the exec fails.
const PID_MS = 10_000;
// Largest pid Linux hands out.
const MAX_PID = 4_194_304;
// Failures of sprite-init itself look like runc's own (it exits 255 when it cannot start a command).
const FAILED = 255;

/** Runs `spec` on `socket`, a fresh connection to the agent whose pid (as sprite-init sees it) is `agentPid`. */
export function agentProcess(socket: Socket, spec: ExecSpec, agentPid: number): ExecProcess {
  const outputs: Array<(stream: OutputStream, data: Buffer) => void> = [];
  const exits: Array<(status: number) => void> = [];
  let inner = 0;
  let outer = 0;
  let status: number | undefined;
  let early: SignalName | undefined;

  const find = (): number => {
    if (outer === 0 && inner > 0 && agentPid > 0) outer = childInContainer(agentPid, inner);
    return outer;
  };
  const send = (name: SignalName): void => {
    const pid = find();
    if (pid > 0) signalGroup(pid, name);
  };
  const end = (code: number): void => {
    if (status !== undefined) return;
    status = code;
    clearTimeout(pidTimer);
    socket.end();
    for (const listener of exits) listener(code);
  };
  const output = (stream: OutputStream, data: Buffer): void => {
    if (data.length > 0) for (const listener of outputs) listener(stream, data);
  };
  const frames = new ExecFrames((kind, data) => {
    if (status !== undefined) return;
    if (kind === EXEC.stdout || kind === EXEC.stderr) output(kind, data);
    else if (kind === EXEC.exit && data.length === 1) end(data[0]!);
    else if (kind === EXEC.pid && inner === 0 && data.length === 4 && data.readUInt32BE(0) > 0 && data.readUInt32BE(0) <= MAX_PID) {
      inner = data.readUInt32BE(0);
      clearTimeout(pidTimer);
      // Looked up while its parent is still the agent, so it can be signalled (and killed if the agent
      // goes) without asking the agent; a command already gone is looked up again when signalled.
      find();
      if (early) send(early);
    } else socket.destroy();
  });
  const pidTimer = setTimeout(() => socket.destroy(), PID_MS);

  socket.on('error', () => undefined);
  socket.on('data', (chunk: Buffer) => {
    if (!frames.push(chunk)) socket.destroy();
  });
  socket.once('close', () => {
    if (status !== undefined) return;
    // What the command left running would have nobody to report to: it goes.
    if (outer !== 0) send('KILL');
    output(2, Buffer.from('sprite-init: the sprite agent went away before the command ended\n'));
    end(FAILED);
  });
  socket.write(execFrame(EXEC.request, Buffer.from(JSON.stringify({ command: spec.command, env: spec.env ?? {}, dir: spec.dir ?? '/root' }))));

  return {
    tty: false,
    write: (data) => {
      for (let at = 0; at < data.length; at += MAX_EXEC_FRAME - 1) socket.write(execFrame(EXEC.stdin, data.subarray(at, at + MAX_EXEC_FRAME - 1)));
    },
    endInput: () => void socket.write(execFrame(EXEC.stdinEof)),
    resize: () => undefined,
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
    signal: (name) => {
      if (inner === 0) early = name;
      else send(name);
      return inner;
    },
    pid: () => inner,
    onOutput: (listener) => void outputs.push(listener),
    onExit: (listener) => {
      exits.push(listener);
      // The connection came paused from the agents' handshake: it flows once someone listens.
      socket.resume();
    },
  };
}

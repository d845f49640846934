// A stand-in internet for egress tests: a network namespace joined to the host by a veth (addresses
// in 198.18.0.0/15, the benchmarking range), with an HTTP and a DNS server inside. A peer started
// with `--egress-uplink <uplink> --egress-dns <dnsAddress>` sends sprite traffic only here: nothing
// leaves the machine.
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** A running test internet. */
export interface Internet {
  /** Host end of the veth: the peer's uplink. */
  uplink: string;
  /** The host's address on the uplink. */
  hostAddress: string;
  /** The namespace's address (DNS on port 53, HTTP on httpPort). */
  address: string;
  /** A second address of the namespace (HTTP too), which names starting with `other` resolve to. */
  otherAddress: string;
  dnsAddress: string;
  /** `IP:PORT` of the HTTP server. */
  httpAddress: string;
  /** Name of the network namespace (for `ip netns exec`). */
  netns: string;
  close(): Promise<void>;
}

const SERVER = new URL('./internet-server.ts', import.meta.url).pathname;
const HTTP_PORT = 8080;

/** Creates the namespace, its veth and servers. */
export async function startInternet(): Promise<Internet> {
  const id = Math.floor(Math.random() * 250) + 1;
  const netns = `spinet${process.pid % 10000}x${id}`;
  const uplink = `si${process.pid % 10000}x${id}`;
  const [hostAddress, address, otherAddress] = [`198.18.${id}.1`, `198.18.${id}.2`, `198.18.${id}.3`];
  const ip = (...args: string[]): void => void execFileSync('ip', args, { stdio: 'pipe' });
  const close = async (): Promise<void> => {
    server?.kill('SIGKILL');
    try { ip('link', 'del', uplink); } catch { /* gone already */ }
    try { ip('netns', 'del', netns); } catch { /* gone already */ }
  };
  let server: ReturnType<typeof spawn> | undefined;
  try {
    ip('netns', 'add', netns);
    ip('link', 'add', uplink, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
    ip('addr', 'add', `${hostAddress}/24`, 'dev', uplink);
    ip('link', 'set', uplink, 'up');
    for (const command of [['link', 'set', 'lo', 'up'], ['addr', 'add', `${address}/24`, 'dev', 'eth0'], ['addr', 'add', `${otherAddress}/24`, 'dev', 'eth0'], ['link', 'set', 'eth0', 'up'],
      // So the inbound test's packets for sprite addresses reach the host at all (a real neighbour could send them).
      ['route', 'add', '100.64.0.0/10', 'via', hostAddress]]) {
      ip('netns', 'exec', netns, 'ip', ...command);
    }
    server = spawn('ip', ['netns', 'exec', netns, process.execPath, '--disable-warning=ExperimentalWarning', SERVER, address, String(HTTP_PORT), otherAddress], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: server!.stdout! }).once('line', (line) => (line === 'ready' ? resolve() : reject(new Error(line))));
      server!.once('exit', (code) => reject(new Error(`internet server exited with ${code}`)));
    });
  } catch (error) {
    await close();
    throw error;
  }
  return { uplink, hostAddress, address, otherAddress, dnsAddress: address, httpAddress: `${address}:${HTTP_PORT}`, netns, close };
}

/** Runs a command inside the internet namespace; resolves with its exit code and output. */
export function insideInternet(internet: Internet, command: string[]): { code: number; output: string } {
  try {
    return { code: 0, output: execFileSync('ip', ['netns', 'exec', internet.netns, ...command], { stdio: 'pipe', timeout: 15_000 }).toString() };
  } catch (error) {
    const failed = error as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { code: failed.status ?? 1, output: `${failed.stdout?.toString() ?? ''}${failed.stderr?.toString() ?? ''}` };
  }
}

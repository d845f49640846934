// A tiny network client for egress tests, run with `node -e PROBE <mode> ...` inside a sprite or a
// namespace (busybox's wget and nc are unreliable on refused connections). Modes:
//   connect HOST PORT  prints `open`, or the error code (ECONNREFUSED, EHOSTUNREACH, timeout); exit 0 only when open
//   get URL            prints the body; exit 0 on a 2xx answer read to its end, else the error code and exit 2
//   resolve NAME       prints the A records through /etc/resolv.conf's server, else the error code (EREFUSED...)
export const PROBE = `
const [mode, a, b] = process.argv.slice(1);
const fail = (code) => { process.stdout.write(String(code) + '\\n'); process.exit(2); };
if (mode === 'connect') {
  const socket = require('node:net').connect({ host: a, port: Number(b) });
  socket.setTimeout(3000, () => fail('timeout'));
  socket.on('connect', () => { process.stdout.write('open\\n'); process.exit(0); });
  socket.on('error', (error) => fail(error.code));
} else if (mode === 'get') {
  const req = require('node:http').get(a, (res) => {
    res.pipe(process.stdout);
    res.on('end', () => process.exit(res.statusCode < 300 ? 0 : 2));
    res.on('error', (error) => fail(error.code));
  });
  req.setTimeout(5000, () => fail('timeout'));
  req.on('error', (error) => fail(error.code));
} else if (mode === 'resolve') {
  require('node:dns').promises.resolve4(a).then((addresses) => process.stdout.write(addresses.join(' ') + '\\n'), (error) => fail(error.code));
} else fail('bad mode');
`;

/** The Node of /.sprite/bin, as a command inside a sprite (through its own loader: the image may have no libc). */
export const SPRITE_NODE = ['/.sprite/bin/lib/ld-linux-x86-64.so.2', '--library-path', '/.sprite/bin/lib', '/.sprite/bin/node'];

/** The command line that runs the probe inside a sprite. */
export function probeInSprite(...args: string[]): string[] {
  return [...SPRITE_NODE, '-e', PROBE, ...args];
}

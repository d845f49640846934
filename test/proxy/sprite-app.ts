// A web app that runs inside a sprite on the sprite's own Node (busybox has no WebSocket server):
// `/` greets, `/sse` streams three events, `/headers` echoes request headers, anything with an
// Upgrade is a WebSocket echo. Written into the sprite as plain JavaScript.

/** The app's source; it listens on 127.0.0.1:8080 and names itself `name`. */
export function spriteAppSource(name: string): string {
  return `
import http from 'node:http';
import { createHash } from 'node:crypto';
const server = http.createServer((req, res) => {
  if (req.url === '/sse') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let n = 0;
    const timer = setInterval(() => {
      res.write('data: tick ' + n + '\\n\\n');
      if (++n === 3) { clearInterval(timer); res.end(); }
    }, 30);
    res.on('close', () => clearInterval(timer));
    return;
  }
  if (req.url === '/headers') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify(req.headers)); return; }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('hello from ${name}\\n');
});
server.on('upgrade', (req, socket) => {
  const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nupgrade: websocket\\r\\nconnection: upgrade\\r\\nsec-websocket-accept: ' + accept + '\\r\\n\\r\\n');
  let buffer = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (buffer.length < 2) return;
      const opcode = buffer[0] & 15;
      let length = buffer[1] & 127;
      let offset = 2;
      if (length === 126) { if (buffer.length < 4) return; length = buffer.readUInt16BE(2); offset = 4; }
      if (buffer.length < offset + 4 + length) return;
      const mask = buffer.subarray(offset, offset + 4);
      const payload = Buffer.from(buffer.subarray(offset + 4, offset + 4 + length)).map((b, i) => b ^ mask[i % 4]);
      buffer = buffer.subarray(offset + 4 + length);
      if (opcode === 8) { socket.end(Buffer.from([0x88, 0])); return; }
      const head = length < 126 ? Buffer.from([0x80 | opcode, length]) : Buffer.from([0x80 | opcode, 126, length >> 8, length & 255]);
      socket.write(Buffer.concat([head, payload]));
    }
  });
  socket.on('error', () => socket.destroy());
});
server.listen(8080, '127.0.0.1');
`;
}

/** The service command line that runs the app on the sprite's Node (the runtime sprite-env uses). */
export const SPRITE_APP_COMMAND = ['sh', '-c', 'exec /.sprite/bin/lib/ld-linux-*.so.* --library-path /.sprite/bin/lib /.sprite/bin/node /srv/app.mjs'];

// Runs inside the test "internet" namespace (see internet.ts): an HTTP server and a tiny DNS server.
// HTTP: `/` says hello, `/bytes?n=N` streams N bytes, `/hold` answers its headers and then a byte a
// second until the client goes; it listens on both of the namespace's addresses. DNS: every A
// question for a name under `.test` gets the namespace's address, or its other address for a name
// whose first label starts with `other` (TTL 60); anything else NXDOMAIN.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';

const [address, httpPort, otherAddress] = [process.argv[2]!, Number(process.argv[3]), process.argv[4]!];

const CHUNK = Buffer.alloc(1024 * 1024, 120);
const http = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://internet');
  if (url.pathname === '/bytes') {
    let left = Number(url.searchParams.get('n') ?? 0);
    res.writeHead(200, { 'content-length': String(left) });
    const pump = (): void => {
      while (left > 0) {
        const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= piece.length;
        if (!res.write(piece)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  } else if (url.pathname === '/hold') {
    res.writeHead(200);
    const timer = setInterval(() => res.write('.'), 1000);
    res.once('close', () => clearInterval(timer));
  } else {
    res.end(`hello from the internet, ${req.socket.remoteAddress}\n`);
  }
});

const dns = createSocket('udp4');
dns.on('message', (query, peer) => {
  if (query.length < 17) return;
  // The question: labels up to a zero byte, then type and class.
  let at = 12;
  const labels: string[] = [];
  while (at < query.length && query[at]! > 0) {
    labels.push(query.subarray(at + 1, at + 1 + query[at]!).toString());
    at += 1 + query[at]!;
  }
  const question = query.subarray(12, at + 5);
  const type = query.readUInt16BE(at + 1);
  const known = labels.at(-1) === 'test';
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8180 | (known ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  const answer = Buffer.alloc(16);
  if (known && type === 1) {
    answer.writeUInt16BE(0xc00c, 0);
    answer.writeUInt16BE(1, 2);
    answer.writeUInt16BE(1, 4);
    answer.writeUInt32BE(60, 6);
    answer.writeUInt16BE(4, 10);
    (labels[0]?.startsWith('other') ? otherAddress : address).split('.').forEach((part, i) => answer.writeUInt8(Number(part), 12 + i));
    header.writeUInt16BE(1, 6);
  }
  dns.send(Buffer.concat([header, question, header.readUInt16BE(6) === 1 ? answer : Buffer.alloc(0)]), peer.port, peer.address);
});

http.listen(httpPort, '0.0.0.0', () => dns.bind(53, address, () => process.stdout.write('ready\n')));

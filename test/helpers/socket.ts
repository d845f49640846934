import http from 'node:http';

/** GET / over a Unix socket: a sprite's HTTP port socket on its owner, where the proxy sends the sprite's URL. */
export function getViaSocket(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath, path: '/', headers: { host: 'sprite' } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

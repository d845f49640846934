/**
 * sprite-env: the command user code runs inside a sprite to talk to sprite-init over
 * /.sprite/api.sock. Dependency-free: it runs on the Node runtime mounted at /.sprite/bin.
 */
import net from 'node:net';

const SOCKET = process.env.SPRITE_API_SOCKET ?? '/.sprite/api.sock';

const USAGE = `usage: sprite-env info
       sprite-env services list
       sprite-env services get NAME
       sprite-env services create NAME [--http-port P] [--dir D] [--env K=V]... [--needs SVC]... -- CMD [ARGS...]
       sprite-env services delete NAME
       sprite-env services logs NAME
       sprite-env checkpoints list [--json]
       sprite-env checkpoints create [-m COMMENT] [--json]`;

function call(request: object): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(SOCKET);
    let data = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      data += chunk;
      const newline = data.indexOf('\n');
      if (newline < 0) return;
      socket.end();
      const reply = JSON.parse(data.slice(0, newline)) as { ok: boolean; result?: unknown; error?: { message: string } };
      if (reply.ok) resolve(reply.result);
      else reject(new Error(reply.error?.message ?? 'request failed'));
    });
    socket.on('error', (error) => reject(new Error(`cannot reach sprite-init at ${SOCKET}: ${error.message}`)));
  });
}

function parseCreate(args: string[]): object {
  const [name, ...rest] = args;
  if (!name) throw new UsageError('services create needs NAME');
  const spec: { name: string; cmd?: string; args?: string[]; env: Record<string, string>; dir?: string; needs: string[]; http_port?: number } = { name, env: {}, needs: [] };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    if (arg === '--') {
      const command = rest.slice(i + 1);
      if (command.length === 0) throw new UsageError('services create needs a command after --');
      spec.cmd = command[0];
      spec.args = command.slice(1);
      return spec;
    }
    const value = rest[++i];
    if (value === undefined) throw new UsageError(`${arg} needs a value`);
    if (arg === '--http-port') spec.http_port = Number(value);
    else if (arg === '--needs') spec.needs.push(value);
    else if (arg === '--dir') spec.dir = value;
    else if (arg === '--env') {
      const eq = value.indexOf('=');
      if (eq < 1) throw new UsageError('--env takes K=V');
      spec.env[value.slice(0, eq)] = value.slice(eq + 1);
    } else throw new UsageError(`unknown flag ${arg}`);
  }
  throw new UsageError('services create needs -- CMD');
}

interface Checkpoint {
  id: string;
  comment: string;
  created: number;
  /** Where it is mounted read-only inside this sprite (the newest five are), else null. */
  path: string | null;
}

/** `-m COMMENT` and `--json`, nothing else. */
function parseCheckpointFlags(args: string[]): { comment?: string; json: boolean } {
  const flags: { comment?: string; json: boolean } = { json: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--json') flags.json = true;
    else if (arg === '-m' || arg === '--message') {
      const value = args[++i];
      if (value === undefined) throw new UsageError(`${arg} needs a value`);
      flags.comment = value;
    } else throw new UsageError(`unknown argument ${arg}`);
  }
  return flags;
}

class UsageError extends Error {}

async function main(argv: string[]): Promise<void> {
  const [group, verb, ...rest] = argv;
  if (group === 'info') {
    console.log(JSON.stringify(await call({ op: 'info' }), null, 2));
  } else if (group === 'services' && verb === 'list') {
    const services = (await call({ op: 'services.list' })) as { name: string; cmd: string; state: { status: string; restart_count: number } }[];
    for (const s of services) console.log(`${s.name}\t${s.state.status}\t${s.state.restart_count}\t${s.cmd}`);
  } else if (group === 'services' && verb === 'get' && rest[0]) {
    console.log(JSON.stringify(await call({ op: 'services.get', name: rest[0] }), null, 2));
  } else if (group === 'services' && verb === 'create') {
    console.log(JSON.stringify(await call({ op: 'services.create', spec: parseCreate(rest) }), null, 2));
  } else if (group === 'services' && verb === 'delete' && rest[0]) {
    await call({ op: 'services.delete', name: rest[0] });
  } else if (group === 'services' && verb === 'logs' && rest[0]) {
    process.stdout.write(String(await call({ op: 'services.logs', name: rest[0] })));
  } else if (group === 'checkpoints' && verb === 'list') {
    const flags = parseCheckpointFlags(rest);
    if (flags.comment !== undefined) throw new UsageError('checkpoints list takes no comment');
    const checkpoints = (await call({ op: 'checkpoints.list' })) as Checkpoint[];
    if (flags.json) console.log(JSON.stringify(checkpoints, null, 2));
    else for (const c of checkpoints) console.log(`${c.id}\t${new Date(c.created).toISOString()}\t${c.path ?? '-'}\t${c.comment}`);
  } else if (group === 'checkpoints' && verb === 'create') {
    const flags = parseCheckpointFlags(rest);
    const created = (await call({ op: 'checkpoints.create', comment: flags.comment ?? '' })) as Checkpoint;
    console.log(flags.json ? JSON.stringify(created, null, 2) : created.id);
  } else {
    throw new UsageError(group ? `unknown command: ${argv.join(' ')}` : 'missing command');
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`sprite-env: ${(error as Error).message}\n`);
  if (error instanceof UsageError) process.stderr.write(`${USAGE}\n`);
  process.exit(error instanceof UsageError ? 2 : 1);
});

// Where the CLI finds the peer and its token: SPRITE_API, SPRITE_TOKEN, SPRITE_DATA_DIR.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_API_URL, defaultDataDir } from '../defaults.ts';
import { CliError } from './errors.ts';

/** How the CLI reaches the peer. */
export interface CliConfig {
  /** Base URL of the peer's API, without a trailing slash. */
  readonly api: string;
  /** Bearer token, or undefined when none was found. */
  readonly token: string | undefined;
  /** The token file that was consulted (for hints when the token is missing). */
  readonly tokenPath: string;
}

/** Normalizes an API address (`host:port` gets `http://`); throws CliError when it is no URL. */
export function normalizeApi(text: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CliError('ERR_BAD_API', `SPRITE_API is not a valid URL: '${text}'`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError('ERR_BAD_API', `SPRITE_API must be an http(s) URL, got '${text}'`);
  }
  return url.href.replace(/\/+$/, '');
}

/** Reads the CLI configuration from the environment and the token file. */
export function loadConfig(env: NodeJS.ProcessEnv): CliConfig {
  const api = normalizeApi(env['SPRITE_API'] || DEFAULT_API_URL);
  const tokenPath = join(defaultDataDir(env), 'token');
  const fromEnv = env['SPRITE_TOKEN']?.trim();
  return { api, tokenPath, token: fromEnv || readToken(tokenPath) };
}

/** Reads a token file; a missing file means no token, any other failure is an error. */
function readToken(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim() || undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new CliError('ERR_TOKEN_FILE', `cannot read the token file ${path}: ${code ?? String(err)}`, { cause: err });
  }
}

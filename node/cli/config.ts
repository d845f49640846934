// Where the CLI finds the peer and its token: SPRITE_API, SPRITE_TOKEN, SPRITE_DATA_DIR.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './errors.ts';

/** Default values used when the environment says nothing. */
export const DEFAULTS = Object.freeze({
  /** Address of the peer's HTTP API. */
  api: 'http://127.0.0.1:7070',
  /** Data directory under the home directory. */
  dataDirName: '.sprite',
});

/** How the CLI reaches the peer. */
export interface CliConfig {
  /** Base URL of the peer's API, without a trailing slash. */
  readonly api: string;
  /** Bearer token, or undefined when none was found. */
  readonly token: string | undefined;
  /** The token file that was consulted (for hints when the token is missing). */
  readonly tokenPath: string;
}

/** The default data directory: SPRITE_DATA_DIR, else `~/.sprite`. */
export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  return env['SPRITE_DATA_DIR'] || join(homedir(), DEFAULTS.dataDirName);
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
  const api = normalizeApi(env['SPRITE_API'] || DEFAULTS.api);
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

import { ProxyError } from './errors.ts';

/** A DNS label as sprite names use it: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'. */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Whether `domain` is a lowercase DNS name of labels that sprite URLs can sit under. */
export function validDomain(domain: string): boolean {
  return domain.length <= 190 && domain.split('.').every((label) => LABEL.test(label));
}

/**
 * The sprite named by a Host header (or `:authority`): the port is dropped, case is ignored, a
 * trailing dot is allowed, and exactly one label must sit under `domain`. Throws ERR_PROXY_BAD_HOST
 * with a reason otherwise.
 */
export function spriteFromHost(host: string | undefined, domain: string): string {
  if (host === undefined || host === '') throw new ProxyError('ERR_PROXY_BAD_HOST', 'the request has no Host header');
  if (host.length > 300) throw new ProxyError('ERR_PROXY_BAD_HOST', 'the Host header is too long');
  let name = host.toLowerCase();
  if (name.startsWith('[')) throw new ProxyError('ERR_PROXY_BAD_HOST', `${clip(host)} is an IP address; use https://NAME.${domain}/`);
  const colon = name.lastIndexOf(':');
  if (colon !== -1) {
    if (!/^\d{1,5}$/.test(name.slice(colon + 1))) throw new ProxyError('ERR_PROXY_BAD_HOST', `the Host header ${clip(host)} has a bad port`);
    name = name.slice(0, colon);
  }
  if (name.endsWith('.')) name = name.slice(0, -1);
  const suffix = `.${domain}`;
  if (!name.endsWith(suffix)) throw new ProxyError('ERR_PROXY_BAD_HOST', `${clip(host)} is not under ${domain}; sprite URLs look like NAME.${domain}`);
  const label = name.slice(0, -suffix.length);
  if (!LABEL.test(label)) throw new ProxyError('ERR_PROXY_BAD_HOST', `${clip(host)} must have exactly one sprite name label under ${domain}`);
  return label;
}

/** The host of a URL for `name` under `domain`, with the port unless it is the scheme's default. */
export function spriteHost(name: string, domain: string, port: number, scheme: 'http' | 'https'): string {
  const defaultPort = scheme === 'https' ? 443 : 80;
  return port === defaultPort ? `${name}.${domain}` : `${name}.${domain}:${port}`;
}

function clip(text: string): string {
  const printable = text.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 80 ? `${printable.slice(0, 80)}...` : printable;
}

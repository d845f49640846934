// The edge proxy's defaults in one object, in a file with no imports: node/options.ts reads them for
// the peer's flags and help without loading the proxy (undici, HTTP/2, TLS) behind proxy/index.ts.

/** Defaults of every proxy option (see ProxyInit for what each one is). */
export const PROXY_DEFAULTS = {
  http: { host: '127.0.0.1', port: 7480 },
  https: { host: '127.0.0.1', port: 7443 },
  /** The peer link listener: other peers' proxies hand requests over here (its address is gossiped, so any port does). */
  link: { host: '127.0.0.1', port: 0 },
  /** Browsers and curl resolve `*.localhost` to loopback with no DNS set-up. */
  domain: 'sprites.localhost',
  certWaitMs: 0,
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  clientIdleMs: 120_000,
  keepAliveTimeoutMs: 5000,
  upstreamIdleMs: 120_000,
  connectTimeoutMs: 5000,
} as const;

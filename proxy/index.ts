/** Public surface of proxy/: the edge proxy that answers `NAME.<domain>` for every sprite of the mesh. */
export { createProxy, PROXY_DEFAULTS } from './proxy.ts';
export type { EdgeProxy, ListenAddress, LocalSprites, ProxyComponents, ProxyInit, ProxyStats } from './proxy.ts';
export { PROXY_ERROR_CODES, ProxyError } from './errors.ts';
export type { ProxyErrorCode } from './errors.ts';
export { DEFAULT_DOMAIN, spriteFromHost, spriteHost, validDomain } from './host.ts';
export { formatProxyColumn, parseProxyColumn, RouteTable } from './routes.ts';
export type { ProxyAddress, ProxyMesh, Route, SpriteRow } from './routes.ts';
export { cachedTokenCheck, URL_AUTH_MODES, RESERVED_PREFIX } from './auth.ts';
export type { CachedTokenCheck, TokenCheck, TokenOwner, UrlAuth } from './auth.ts';
export { createHttpProxyForwarder } from './forward.ts';
export type { Forwarder, ForwarderStats, ForwardTarget, HttpProxyForwarderInit } from './forward.ts';
export { CertSource, generateMeshCert, parseBundle } from './tls.ts';
export type { CertBundle, CertMesh, CertSourceInit } from './tls.ts';
export { HOP_HEADER, HopSigner } from './hop.ts';
export { Waker, WAKE_DEFAULTS, waitForHttp } from './wake.ts';
export type { WakeComponents, WakeInit, WakeStats } from './wake.ts';
export type { SpriteActivity } from './activity.ts';
export type { ProxyLogger } from './logger.ts';

import type { Duplex } from 'node:stream';
import type tls from 'node:tls';

/**
 * The authenticated, encrypted links between peers (mutual TLS with the mesh's peer-link CA, each
 * certificate naming a peer id), as the proxy uses them: its link listener takes hops from other
 * peers' proxies there, and its forwarder reaches other peers' link listeners. node/ gives the
 * implementation (node/links/), which follows the CA in the replicated store.
 */
export interface LinkTls {
  /** Changes whenever this peer's certificate, key or the CA change: connections pooled before are dropped. */
  readonly generation: number;
  /** Options of a link listener: this peer's certificate and key, the CA, client certificates required. */
  server(): tls.SecureContextOptions & { requestCert: true; rejectUnauthorized: true };
  /** Options to connect to `peer`'s link listener: this peer's certificate, the CA, and a check that the server's certificate names `peer`. */
  client(peer: string): tls.ConnectionOptions;
  /** The peer a link connection's client certificate names, when that peer is a member of the mesh not marked down; else undefined. */
  peerOf(socket: Duplex): string | undefined;
  /** Calls `listener` after each change of certificate, key or CA; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

/** The CN of a verified client certificate on a TLS socket; undefined for anything else (plain sockets, no or unverified certificate). */
export function certifiedName(socket: Duplex): string | undefined {
  const tlsSocket = socket as Partial<tls.TLSSocket>;
  if (tlsSocket.authorized !== true || typeof tlsSocket.getPeerCertificate !== 'function') return undefined;
  const cn = tlsSocket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}

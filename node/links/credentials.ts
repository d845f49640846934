import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { certifiedName, type LinkTls } from '../../proxy/index.ts';
import type { KeyPair } from './pki.ts';

/** Which peers may use a link: members of the mesh that the failure detector does not mark down. */
export type MemberCheck = (peer: string) => boolean;

/** What the member check reads of the mesh: its members now and their state changes. */
export interface MemberSource {
  readonly peerId: string;
  members(): { id: string; state: string }[];
  onMemberChange(listener: (event: { id: string; to: string }) => void): () => void;
}

/** The member check over the mesh's failure detector, kept current by its events (a lookup per call); this peer is always one. */
export function memberCheck(mesh: MemberSource): { check: MemberCheck; close(): void } {
  const states = new Map<string, string>();
  for (const member of mesh.members()) states.set(member.id, member.state);
  const close = mesh.onMemberChange((event) => states.set(event.id, event.to));
  const check: MemberCheck = (peer) => {
    if (peer === mesh.peerId) return true;
    const state = states.get(peer);
    return state !== undefined && state !== 'down';
  };
  return { check, close };
}

/**
 * One peer's link credentials at one moment: its certificate and key and the CA, as TLS options for
 * both ends of a link, and the mapping from a verified client certificate to a current member.
 * Certificates name the peer id in the subject's CN; a server is checked against the peer id the
 * caller meant to reach (never a host name: addresses come from gossip).
 */
export class LinkCredentials implements LinkTls {
  readonly #listeners = new Set<() => void>();
  readonly #member: MemberCheck;
  readonly #names = new WeakMap<Duplex, string | null>();
  #ca: string;
  #pair: KeyPair;
  generation = 0;

  constructor(ca: string, pair: KeyPair, member: MemberCheck) {
    this.#ca = ca;
    this.#pair = pair;
    this.#member = member;
  }

  /** Switches to a new certificate (and CA); pools built on the old ones are dropped by their owners. */
  replace(ca: string, pair: KeyPair): void {
    this.#ca = ca;
    this.#pair = pair;
    this.generation += 1;
    for (const listener of this.#listeners) listener();
  }

  server(): tls.SecureContextOptions & { requestCert: true; rejectUnauthorized: true } {
    return { ca: this.#ca, cert: this.#pair.cert, key: this.#pair.key, requestCert: true, rejectUnauthorized: true };
  }

  client(peer: string): tls.ConnectionOptions {
    return {
      ca: this.#ca, cert: this.#pair.cert, key: this.#pair.key, rejectUnauthorized: true,
      // SNI carries the peer id: connection pools keyed by it never hand one peer's connection to another.
      servername: peer.toLowerCase(),
      checkServerIdentity: (_host, cert) => (cert.subject?.CN === peer ? undefined : Object.assign(new Error(`the peer link answered as ${cert.subject?.CN ?? 'nobody'}, not ${peer}`), { code: 'ERR_LINK_IDENTITY' })),
    };
  }

  peerOf(socket: Duplex): string | undefined {
    let name = this.#names.get(socket);
    if (name === undefined) {
      name = certifiedName(socket) ?? null;
      this.#names.set(socket, name);
    }
    return name !== null && this.#member(name) ? name : undefined;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

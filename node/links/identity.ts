import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { LinkTls } from '../../proxy/index.ts';
import type { Logger } from '../../vm/index.ts';
import type { LinkCaStore } from '../records/index.ts';
import { LinkCredentials, type MemberCheck } from './credentials.ts';
import { generateLinkCa, issuePeerCert, parseKeyPair, type KeyPair } from './pki.ts';

/** What a peer's link identity is built from. */
export interface LinkIdentityInit {
  peerId: string;
  /** Where this peer's link key, certificate and the CA are written (its data dir's `link/`), for the operator and tests. */
  dir: string;
  store: LinkCaStore;
  member: MemberCheck;
  logger: Logger;
}

/**
 * This peer's side of the peer-link PKI: takes the mesh's link CA from the replicated store (makes
 * it when the mesh has none), makes its own key and a certificate naming its peer id, and follows
 * the store: when two peers made a CA at once and the store keeps the other one, this peer signs a
 * new certificate with that and switches (its links fail until both ends switched). It is the
 * peer's LinkTls from the start, usable once `start` resolved.
 */
export class LinkIdentity implements LinkTls {
  readonly #init: LinkIdentityInit;
  readonly #listeners = new Set<() => void>();
  #credentials: LinkCredentials | undefined;
  #ca: KeyPair | undefined;
  #unsubscribe: (() => void) | undefined;
  #reissuing: Promise<void> = Promise.resolve();

  constructor(init: LinkIdentityInit) {
    this.#init = init;
  }

  /** The credentials, once started. */
  get credentials(): LinkCredentials {
    if (!this.#credentials) throw new Error('the link identity is not started');
    return this.#credentials;
  }

  get generation(): number {
    return this.#credentials?.generation ?? 0;
  }

  server(): tls.SecureContextOptions & { requestCert: true; rejectUnauthorized: true } {
    return this.credentials.server();
  }

  client(peer: string): tls.ConnectionOptions {
    return this.credentials.client(peer);
  }

  peerOf(socket: Duplex): string | undefined {
    return this.#credentials?.peerOf(socket);
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Takes (or makes) the CA and signs this peer's certificate; a peer joining a mesh waits up to `waitMs` for the mesh's CA first. */
  async start(waitMs: number): Promise<LinkCredentials> {
    const { store } = this.#init;
    let ca = parseKeyPair(store.get());
    if (!ca && waitMs > 0) ca = await this.#waitForCa(waitMs);
    if (!ca) {
      const made = await generateLinkCa();
      // Another peer's CA may have arrived while openssl ran: keep that one.
      ca = parseKeyPair(store.get());
      if (!ca) {
        store.put(JSON.stringify(made));
        ca = made;
        this.#init.logger.info('generated the peer-link CA');
      }
    }
    const pair = await this.#issue(ca);
    this.#credentials = new LinkCredentials(ca.cert, pair, this.#init.member);
    this.#credentials.onChange(() => {
      for (const listener of this.#listeners) listener();
    });
    this.#unsubscribe = store.onChange((text) => {
      const next = parseKeyPair(text);
      if (!next || next.cert === this.#ca?.cert) return;
      this.#reissuing = this.#reissuing.then(async () => {
        const renewed = await this.#issue(next);
        this.#credentials!.replace(next.cert, renewed);
        this.#init.logger.info('the peer-link CA changed: signed a new link certificate');
      }).catch((error: unknown) => this.#init.logger.warn('signing a link certificate with the new CA failed', { error: (error as Error).message }));
    });
    return this.#credentials;
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#listeners.clear();
  }

  async #issue(ca: KeyPair): Promise<KeyPair> {
    const pair = await issuePeerCert(ca, this.#init.peerId);
    this.#ca = ca;
    await mkdir(this.#init.dir, { recursive: true, mode: 0o700 });
    await writeFile(join(this.#init.dir, 'ca.pem'), ca.cert);
    await writeFile(join(this.#init.dir, 'cert.pem'), pair.cert);
    await writeFile(join(this.#init.dir, 'key.pem'), pair.key, { mode: 0o600 });
    return pair;
  }

  #waitForCa(ms: number): Promise<KeyPair | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ms);
      const unsubscribe = this.#init.store.onChange((text) => {
        const pair = parseKeyPair(text);
        if (pair) done(pair);
      });
      function done(pair: KeyPair | undefined): void {
        clearTimeout(timer);
        unsubscribe();
        resolve(pair);
      }
    });
  }
}

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { proxyCertsTable, type CrdtStore, type StoreTx } from '../gossip/index.ts';
import type { ProxyLogger } from './logger.ts';

const run = promisify(execFile);

/** A certificate and key the HTTPS listener serves, and the CA that signed it when it is the mesh's own. */
export interface CertBundle {
  /** PEM of the mesh CA; null for a certificate from files. */
  ca: string | null;
  /** PEM certificate chain for `*.<domain>`. */
  cert: string;
  /** PEM private key. */
  key: string;
}

/** What the certificate source needs of the mesh: its store and a way to write to it. */
export interface CertMesh {
  readonly store: Pick<CrdtStore, 'get' | 'subscribe'>;
  write(fn: (tx: StoreTx) => void): unknown;
}

/** Where the HTTPS certificate comes from. */
export interface CertSourceInit {
  domain: string;
  /** Certificate and key files; without them the mesh CA is used (generated on first start). */
  files?: { cert: string; key: string };
  /** A peer joining a mesh waits this long for the mesh's certificate to arrive before making one. @default 0 */
  waitMs?: number;
}

/**
 * Generates a mesh CA restricted to `domain` (name constraints) and a wildcard certificate for
 * `*.<domain>` signed by it, with openssl. The CA's key is discarded once it has signed: it can never
 * mint another certificate, so trusting it trusts only this one.
 */
export async function generateMeshCert(domain: string): Promise<CertBundle> {
  const dir = await mkdtemp(join(tmpdir(), 'sprite-ca-'));
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    await run('openssl', [
      'req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '3650', '-subj', `/O=sprites mesh/CN=sprites mesh CA for ${domain}`,
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', `nameConstraints=critical,permitted;DNS:${domain}`,
    ]);
    await run('openssl', ['req', '-new', ...ec, '-keyout', join(dir, 'leaf.key'), '-out', join(dir, 'leaf.csr'), '-subj', `/O=sprites mesh/CN=*.${domain}`]);
    await writeFile(join(dir, 'ext.cnf'), `subjectAltName=DNS:*.${domain},DNS:${domain}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
    await run('openssl', [
      'x509', '-req', '-in', join(dir, 'leaf.csr'), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-set_serial', `0x${Date.now().toString(16)}`,
      '-days', '825', '-extfile', join(dir, 'ext.cnf'), '-out', join(dir, 'leaf.crt'),
    ]);
    const [ca, cert, key] = await Promise.all(['ca.crt', 'leaf.crt', 'leaf.key'].map((file) => readFile(join(dir, file), 'utf8')));
    return { ca: ca!, cert: cert!, key: key! };
  } catch (error) {
    throw new Error(`generate the mesh certificate with openssl: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`, { cause: error });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Parses a `proxy_certs` bundle column; undefined when malformed. */
export function parseBundle(text: string | undefined): CertBundle | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<CertBundle>;
    if (typeof value.cert !== 'string' || typeof value.key !== 'string') return undefined;
    return { ca: typeof value.ca === 'string' ? value.ca : null, cert: value.cert, key: value.key };
  } catch {
    return undefined;
  }
}

/**
 * The HTTPS certificate of this peer: from files, or the mesh's certificate for the domain from the
 * replicated store (made here and written there when the mesh has none). Follows the store, so when
 * two peers generated at once and the store converges on the other one, this peer switches to it.
 */
export class CertSource {
  readonly #init: CertSourceInit;
  readonly #mesh: CertMesh;
  readonly #logger: ProxyLogger;
  readonly #listeners = new Set<(bundle: CertBundle) => void>();
  #bundle: CertBundle | undefined;
  #context: tls.SecureContext | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(init: CertSourceInit, components: { mesh: CertMesh; logger: ProxyLogger }) {
    this.#init = init;
    this.#mesh = components.mesh;
    this.#logger = components.logger;
  }

  /** Loads the certificate (waiting for, or generating, the mesh's one) and follows changes. */
  async start(): Promise<void> {
    const { files, domain } = this.#init;
    if (files) {
      const [cert, key] = await Promise.all([readFile(files.cert, 'utf8'), readFile(files.key, 'utf8')]).catch((error: unknown) => {
        throw new Error(`read the TLS certificate or key: ${(error as Error).message}`, { cause: error });
      });
      this.#use({ ca: null, cert, key });
      return;
    }
    this.#unsubscribe = this.#mesh.store.subscribe(proxyCertsTable, (event) => {
      if (event.pk.domain !== domain) return;
      const bundle = parseBundle(event.row?.bundle);
      if (bundle && this.#bundle && bundle.cert !== this.#bundle.cert) {
        // Two peers made one at once and the store kept the other's: serve that one too.
        this.#logger.info('the mesh certificate changed', { domain });
        this.#use(bundle);
      }
    });
    if (this.#load()) return;
    if ((this.#init.waitMs ?? 0) > 0) await this.#waitForMesh(this.#init.waitMs!);
    if (this.#load()) return;
    const bundle = await generateMeshCert(domain);
    // Another peer's certificate may have arrived while openssl ran: keep that one.
    if (this.#load()) return;
    this.#mesh.write((tx) => tx.upsert(proxyCertsTable, { domain, bundle: JSON.stringify(bundle), created: new Date().toISOString() }));
    this.#logger.info('generated the mesh CA and wildcard certificate', { domain });
    this.#load();
  }

  /** Stops following the store. */
  stop(): void {
    this.#unsubscribe?.();
    this.#listeners.clear();
  }

  /** The TLS context to serve, once started. */
  context(): tls.SecureContext | undefined {
    return this.#context;
  }

  /** The certificate and key being served, once started. */
  bundle(): CertBundle | undefined {
    return this.#bundle;
  }

  /** The mesh CA in PEM, or null when the certificate comes from files. */
  ca(): string | null {
    return this.#bundle?.ca ?? null;
  }

  /** Calls `listener` with each new certificate; returns the unsubscribe. */
  onChange(listener: (bundle: CertBundle) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #load(): boolean {
    const bundle = parseBundle(this.#mesh.store.get(proxyCertsTable, { domain: this.#init.domain })?.bundle);
    if (!bundle) return false;
    if (bundle.cert !== this.#bundle?.cert) this.#use(bundle);
    return true;
  }

  #use(bundle: CertBundle): void {
    const context = tls.createSecureContext({ cert: bundle.cert, key: bundle.key });
    this.#bundle = bundle;
    this.#context = context;
    for (const listener of this.#listeners) listener(bundle);
  }

  #waitForMesh(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const unsubscribe = this.#mesh.store.subscribe(proxyCertsTable, (event) => {
        if (event.pk.domain === this.#init.domain && event.row) done();
      });
      function done(): void {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
  }
}

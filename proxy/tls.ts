import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type { ProxyLogger } from './logger.ts';

const run = promisify(execFile);

/** A certificate and key the HTTPS listener serves, and the CA that signed it when it is the mesh's own. */
export interface CertBundle {
  /** PEM of the mesh CA; null for a certificate from files. */
  ca: string | null;
  /** PEM key of the mesh CA, kept so any peer can renew the wildcard certificate; absent for files. */
  caKey?: string;
  /** PEM certificate chain for `*.<domain>`. */
  cert: string;
  /** PEM private key. */
  key: string;
}

/**
 * Where the mesh's certificate bundles live, one per domain as JSON text: given by node/, which
 * replicates them to every peer, so all peers serve one certificate.
 */
export interface CertStore {
  /** The bundle stored for `domain`, or undefined. */
  get(domain: string): string | undefined;
  /** Stores a new bundle for `domain`; every peer sees it soon. */
  put(domain: string, bundle: string): void;
  /** Calls `listener` whenever the bundle of `domain` changes (undefined: it went); returns the unsubscribe. */
  onChange(domain: string, listener: (bundle: string | undefined) => void): () => void;
}

/** Where the HTTPS certificate comes from. */
export interface CertSourceInit {
  domain: string;
  /** Certificate and key files; without them the mesh CA is used (generated on first start). */
  files?: { cert: string; key: string };
  /** A peer joining a mesh waits this long for the mesh's certificate to arrive before making one. @default 0 */
  waitMs?: number;
  /** Lifetime of the mesh certificates this peer makes; renewed with a third of it left. @default 825 days */
  lifetimeMs?: number;
}

/** Options of a mesh certificate. */
export interface MeshCertOptions {
  /** Lifetime of the wildcard certificate. @default 825 days */
  lifetimeMs?: number;
  /** Sign with this CA instead of making a new one (a renewal). */
  ca?: { cert: string; key: string };
  /** Issue time. @default now */
  now?: number;
}

/** Lifetime of a new wildcard certificate, and of a new CA. */
const CERT_DEFAULTS = { lifetimeMs: 825 * 86_400_000, caLifetimeDays: 3650 } as const;

/**
 * Generates a wildcard certificate for `*.<domain>` and `<domain>` with openssl, signed by the given
 * mesh CA or by a new one restricted to `domain` (name constraints): trusting the CA trusts nothing
 * outside the domain. The CA's key is returned so that any peer can renew the certificate later.
 */
export async function generateMeshCert(domain: string, options: MeshCertOptions = {}): Promise<CertBundle> {
  const dir = await mkdtemp(join(tmpdir(), 'sprite-ca-'));
  const lifetimeMs = options.lifetimeMs ?? CERT_DEFAULTS.lifetimeMs;
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    if (options.ca) {
      await writeFile(join(dir, 'ca.crt'), options.ca.cert);
      await writeFile(join(dir, 'ca.key'), options.ca.key, { mode: 0o600 });
    } else {
      await run('openssl', [
        'req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', String(CERT_DEFAULTS.caLifetimeDays), '-subj', `/O=sprites mesh/CN=sprites mesh CA for ${domain}`,
        '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', `nameConstraints=critical,permitted;DNS:${domain}`,
      ]);
    }
    await run('openssl', ['req', '-new', ...ec, '-keyout', join(dir, 'leaf.key'), '-out', join(dir, 'leaf.csr'), '-subj', `/O=sprites mesh/CN=*.${domain}`]);
    await writeFile(join(dir, 'ext.cnf'), `subjectAltName=DNS:*.${domain},DNS:${domain}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
    // `openssl ca` rather than `x509 -req`: only it takes exact validity times (a test renews in seconds).
    await writeFile(join(dir, 'index.txt'), '');
    await writeFile(join(dir, 'ca.cnf'), `[ca]\ndefault_ca = mesh\n[mesh]\ndatabase = ${dir}/index.txt\nnew_certs_dir = ${dir}\nserial = ${dir}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n[any]\norganizationName = optional\ncommonName = supplied\n`);
    await writeFile(join(dir, 'serial'), `${(randomBytes(16)[0]! & 0x7f).toString(16).padStart(2, '0')}${randomBytes(15).toString('hex')}\n`);
    // Backdated a little (at most a minute) for clocks slightly behind.
    const issued = Math.floor((options.now ?? Date.now()) / 1000) * 1000 - Math.min(60_000, Math.floor(lifetimeMs / 10000) * 1000);
    await run('openssl', [
      'ca', '-batch', '-notext', '-config', join(dir, 'ca.cnf'), '-cert', join(dir, 'ca.crt'), '-keyfile', join(dir, 'ca.key'), '-in', join(dir, 'leaf.csr'),
      '-startdate', asn1Time(issued), '-enddate', asn1Time(issued + lifetimeMs), '-extfile', join(dir, 'ext.cnf'), '-out', join(dir, 'leaf.crt'),
    ]);
    const [ca, caKey, cert, key] = await Promise.all(['ca.crt', 'ca.key', 'leaf.crt', 'leaf.key'].map((file) => readFile(join(dir, file), 'utf8')));
    return { ca: ca!, caKey: caKey!, cert: cert!, key: key! };
  } catch (error) {
    throw new Error(`generate the mesh certificate with openssl: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`, { cause: error });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A certificate's lifetime, and when it is due for renewal: once less than a third of it is left. */
function renewalOf(certPem: string): { due: number; lifetime: number } {
  const cert = new X509Certificate(certPem);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return { due: to - (to - from) / 3, lifetime: to - from };
}

/** openssl's GeneralizedTime for a time in ms: YYYYMMDDHHMMSSZ. */
function asn1Time(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Parses a `proxy_certs` bundle column; undefined when malformed. */
export function parseBundle(text: string | undefined): CertBundle | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as Partial<CertBundle>;
    if (typeof value.cert !== 'string' || typeof value.key !== 'string') return undefined;
    const bundle: CertBundle = { ca: typeof value.ca === 'string' ? value.ca : null, cert: value.cert, key: value.key };
    if (typeof value.caKey === 'string') bundle.caKey = value.caKey;
    return bundle;
  } catch {
    return undefined;
  }
}

/**
 * The HTTPS certificate of this peer: from files, or the mesh's certificate for the domain from the
 * replicated store (made here and written there when the mesh has none). Follows the store, so when
 * two peers generated at once and the store converges on the other one, this peer switches to it.
 * Every peer watches the mesh certificate's expiry: the first one whose timer fires once less than
 * a third of the lifetime is left signs a new one with the mesh CA and writes it; the others see
 * the row change and switch to it.
 */
export class CertSource {
  readonly #init: CertSourceInit;
  readonly #store: CertStore;
  readonly #logger: ProxyLogger;
  readonly #listeners = new Set<(bundle: CertBundle) => void>();
  #bundle: CertBundle | undefined;
  #context: tls.SecureContext | undefined;
  #unsubscribe: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(init: CertSourceInit, components: { store: CertStore; logger: ProxyLogger }) {
    this.#init = init;
    this.#store = components.store;
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
    this.#unsubscribe = this.#store.onChange(domain, (text) => {
      const bundle = parseBundle(text);
      if (bundle && this.#bundle && bundle.cert !== this.#bundle.cert) {
        // Two peers made one at once and the store kept the other's: serve that one too.
        this.#logger.info('the mesh certificate changed', { domain });
        this.#use(bundle);
      }
    });
    if (this.#load()) return;
    if ((this.#init.waitMs ?? 0) > 0) await this.#waitForMesh(this.#init.waitMs!);
    if (this.#load()) return;
    const bundle = await generateMeshCert(domain, { lifetimeMs: this.#init.lifetimeMs });
    // Another peer's certificate may have arrived while openssl ran: keep that one.
    if (this.#load()) return;
    this.#store.put(domain, JSON.stringify(bundle));
    this.#logger.info('generated the mesh CA and wildcard certificate', { domain });
    this.#load();
  }

  /** Stops following the store and renewing. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#unsubscribe?.();
    this.#listeners.clear();
  }

  /**
   * One renewal step: when the mesh certificate in the store has less than a third of its lifetime
   * left at `now`, signs a new one with the mesh CA (a new CA when the bundle has no CA key, or the
   * CA would expire first) and writes it. Resolves true when this call wrote one; peers renewing at
   * once converge on the row the store keeps.
   */
  async #renew(now: number): Promise<boolean> {
    const { domain } = this.#init;
    const current = parseBundle(this.#store.get(domain));
    if (this.#init.files || !current || renewalOf(current.cert).due > now) return false;
    const lifetimeMs = this.#init.lifetimeMs ?? CERT_DEFAULTS.lifetimeMs;
    const caUsable = current.ca !== null && current.caKey !== undefined && Date.parse(new X509Certificate(current.ca).validTo) > now + lifetimeMs;
    const bundle = await generateMeshCert(domain, { lifetimeMs, now, ca: caUsable ? { cert: current.ca!, key: current.caKey! } : undefined });
    // Another peer may have renewed while openssl ran: keep that one.
    const latest = this.#store.get(domain);
    if (this.#stopped || parseBundle(latest)?.cert !== current.cert) return false;
    this.#store.put(domain, JSON.stringify(bundle));
    if (caUsable) this.#logger.info('renewed the mesh certificate', { domain, validTo: new X509Certificate(bundle.cert).validTo });
    else this.#logger.warn('renewed the mesh certificate with a new CA: clients must trust the new `sprite peer ca`', { domain });
    this.#load();
    return true;
  }

  /** Arms the renewal timer for the certificate being served (mesh certificates only). */
  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#init.files || this.#stopped || !this.#bundle) return;
    const { due, lifetime } = renewalOf(this.#bundle.cert);
    // Peers spread their attempts a little, so usually one renews and the others adopt its row.
    const jitter = Math.random() * Math.min(60_000, lifetime / 20);
    // setTimeout holds at most 2^31-1 ms (24.8 days): a longer wait re-arms on the way.
    const wait = Math.min(2 ** 31 - 1, Math.max(0, due + jitter - Date.now()));
    this.#timer = setTimeout(() => {
      if (Date.now() < due) return this.#schedule();
      this.#renew(Date.now()).catch((error: unknown) => {
        this.#logger.warn('renewing the mesh certificate failed; retrying', { domain: this.#init.domain, error: (error as Error).message });
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => this.#schedule(), Math.min(3_600_000, Math.max(1000, lifetime / 100)));
        this.#timer.unref();
      });
    }, wait);
    this.#timer.unref();
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
    const bundle = parseBundle(this.#store.get(this.#init.domain));
    if (!bundle) return false;
    if (bundle.cert !== this.#bundle?.cert) this.#use(bundle);
    return true;
  }

  #use(bundle: CertBundle): void {
    const context = tls.createSecureContext({ cert: bundle.cert, key: bundle.key });
    this.#bundle = bundle;
    this.#context = context;
    this.#schedule();
    for (const listener of this.#listeners) listener(bundle);
  }

  #waitForMesh(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const unsubscribe = this.#store.onChange(this.#init.domain, (bundle) => {
        if (bundle !== undefined) done();
      });
      function done(): void {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      }
    });
  }
}

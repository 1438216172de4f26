/**
 * Which certificates an https (undici) or ftps (curl) server may present: the node's system
 * CA store, Node's bundled roots, NODE_EXTRA_CA_CERTS and the administrator's HTTPS_CA_FILE;
 * or, with HTTPS_VERIFY=no (upstream's `curl -k`), any certificate, with a warning.
 *
 * Node reads the system store itself (tls.getCACertificates('system'): OpenSSL's default
 * file and directory, or SSL_CERT_FILE / SSL_CERT_DIR), with no --use-system-ca flag: Ganeti
 * runs OS scripts with a clean environment, and without NODE_EXTRA_CA_CERTS Node would trust
 * only its bundled roots. curl reads the system store by default and keeps it (its CA
 * directory) when --cacert names the extra bundle.
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, getCACertificates, type SecureContext } from 'node:tls';
import { log } from '../log/logger.ts';
import { UserError } from './errors.ts';

export interface TlsTrust {
  /** HTTPS_CA_FILE: extra PEM certificates to trust; empty: none. */
  caFile: string;
  /** HTTPS_VERIFY: false accepts any certificate. */
  verify: boolean;
}

/** The trust the configuration asks for. */
export function tlsTrust(settings: { HTTPS_CA_FILE: string; HTTPS_VERIFY: boolean }): TlsTrust {
  return { caFile: settings.HTTPS_CA_FILE, verify: settings.HTTPS_VERIFY };
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]{1,65536}?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle; a file with none, or with a broken one, is an error. */
export function parseCaBundle(text: string, file: string): string[] {
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw new UserError(`HTTPS_CA_FILE: ${file} holds no PEM certificate`);
  for (const [i, pem] of blocks.entries()) {
    try {
      new X509Certificate(pem);
    } catch {
      throw new UserError(`HTTPS_CA_FILE: certificate ${i + 1} in ${file} cannot be parsed`);
    }
  }
  return blocks;
}

function readCaFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'latin1');
  } catch (error) {
    throw new UserError(`HTTPS_CA_FILE: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  return parseCaBundle(text, file);
}

const contexts = new Map<string, SecureContext>();
let warned = false;

function warnUnverified(): void {
  if (warned) return;
  warned = true;
  log().warn('HTTPS_VERIFY=no: the certificates of https and ftps servers are not verified');
}

/** Every CA certificate trusted: Node's default set (bundled + NODE_EXTRA_CA_CERTS), the system store, HTTPS_CA_FILE. */
export function trustedCertificates(trust: TlsTrust): string[] {
  const all = [...getCACertificates('default'), ...getCACertificates('system')];
  if (trust.caFile !== '') all.push(...readCaFile(trust.caFile));
  return [...new Set(all)];
}

/** TLS options for an undici Agent's `connect` (one secure context per process and CA file). */
export function undiciTls(trust: TlsTrust): { secureContext: SecureContext } | { rejectUnauthorized: false } {
  if (!trust.verify) {
    warnUnverified();
    return { rejectUnauthorized: false };
  }
  let context = contexts.get(trust.caFile);
  if (!context) {
    context = createSecureContext({ ca: trustedCertificates(trust) });
    contexts.set(trust.caFile, context);
  }
  return { secureContext: context };
}

/** curl's options for the same trust (its own system store stays in use with --cacert). */
export function curlTls(trust: TlsTrust): string[] {
  if (!trust.verify) {
    warnUnverified();
    return ['--insecure'];
  }
  if (trust.caFile === '') return [];
  readCaFile(trust.caFile); // the same one-line error as for https when the file is unusable
  return ['--cacert', trust.caFile];
}

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);

/**
 * Why a request failed, for a one-line error: the TLS reason with what to do about it
 * (certificates are the administrator's to fix, so the hint names the settings).
 */
export function fetchFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code ?? '';
  // Node's own hint ("try running Node.js with --use-system-ca") does not apply: the system store is in use.
  if (UNTRUSTED.has(code))
    return `${error.message.split('; if the root CA')[0]} (the server's certificate is not signed by a trusted CA: add the CA to the system store or HTTPS_CA_FILE)`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    return `${error.message} (the server's certificate is not valid now)`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${error.message} (the certificate is for another name)`;
  return error.message;
}

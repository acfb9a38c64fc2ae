/**
 * TLS for listeners (`listeners[].tls`): the certificate and key files read and checked before they are
 * used, and watched so a renewed certificate reaches new connections without a restart.
 *
 * Files are checked by building a secure context from them first: a half-written or mismatched pair is
 * refused with OpenSSL's reason while the previous certificate keeps serving.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import type { ListenerConfig } from '../config/schema.ts';

export type TlsSettings = NonNullable<ListenerConfig['tls']>;

/** What https.createServer and setSecureContext take, plus a digest to skip reloading identical files. */
export interface TlsMaterial {
  options: { cert: Buffer; key: Buffer; passphrase?: string };
  digest: string;
  /** For logs: which certificate is served. */
  summary: { subject: string; fingerprint256: string; validTo: string };
}

export function tlsPaths(settings: TlsSettings, dir: string): { cert: string; key: string } {
  return { cert: path.resolve(dir, settings.cert), key: path.resolve(dir, settings.key) };
}

/** Reads and checks a listener's TLS files; throws an Error naming the field and the reason. */
export async function loadTls(settings: TlsSettings, dir: string): Promise<TlsMaterial> {
  const paths = tlsPaths(settings, dir);
  const read = async (field: 'cert' | 'key') => {
    try {
      return await readFile(paths[field]);
    } catch (err) {
      throw new Error(`tls.${field}: cannot read ${paths[field]} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  };
  const [cert, key] = await Promise.all([read('cert'), read('key')]);
  const options = { cert, key, ...(settings.passphrase !== undefined ? { passphrase: settings.passphrase } : {}) };
  let leaf: X509Certificate;
  try {
    tls.createSecureContext(options);
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`tls: ${paths.cert} and ${paths.key} are not a usable certificate and key (${(err as Error).message})`);
  }
  const digest = createHash('sha256').update(cert).update('\0').update(key).update('\0').update(settings.passphrase ?? '').digest('hex');
  return { options, digest, summary: { subject: leaf.subject, fingerprint256: leaf.fingerprint256, validTo: leaf.validTo } };
}

/**
 * The gateway's development issuer: a key pair on disk that `npm run token -- create` signs with and the
 * `jwt` plugin (with `keys: { dev: … }`) verifies with, so a fresh checkout has working authentication
 * without an identity provider. Production deployments point `keys` at their IdP instead.
 *
 * Files in the folder (default `.dev-keys`, relative to gateway.yaml):
 * - `private.pem`: the current signing key (PKCS#8), mode 0600;
 * - `jwks.json`: the public keys, newest first; a rotation (`keygen` again) keeps the previous public
 *   keys so tokens signed before it stay valid until they expire;
 * - `revoked.txt`: revoked token ids (`jti`), one a line.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JSONWebKeySet, type JWK } from 'jose';

export const DEV_ISSUER = 'mcp-gateway-dev';
export const DEV_AUDIENCE = 'mcp-gateway';
export const DEV_DIR = '.dev-keys';
export const DEV_ALGORITHMS = ['EdDSA', 'ES256'] as const;
export type DevAlgorithm = (typeof DEV_ALGORITHMS)[number];

/** How many public keys of earlier rotations `jwks.json` keeps besides the current one. */
const KEEP_PREVIOUS_KEYS = 2;

export function devKeyFiles(dir: string) {
  return {
    privateKey: path.join(dir, 'private.pem'),
    jwks: path.join(dir, 'jwks.json'),
    revoked: path.join(dir, 'revoked.txt'),
  };
}

export interface DevSigningKey {
  key: KeyObject;
  kid: string;
  alg: DevAlgorithm;
}

function algorithmOf(key: KeyObject): DevAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new Error(`development keys must be Ed25519 or P-256, found ${key.asymmetricKeyType}`);
}

async function publicJwkOf(privateKey: KeyObject): Promise<JWK> {
  const jwk = await exportJWK(createPublicKey(privateKey));
  const kid = await calculateJwkThumbprint(jwk);
  return { ...jwk, kid, alg: algorithmOf(privateKey), use: 'sig' };
}

async function readJwks(file: string): Promise<JSONWebKeySet> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as JSONWebKeySet;
    return Array.isArray(parsed.keys) ? parsed : { keys: [] };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { keys: [] };
    throw err;
  }
}

/** Write-then-rename, so a running gateway never reads half a JWKS. */
async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, file);
}

/**
 * Makes a new signing key. The private key replaces the current one; its public key goes first in
 * `jwks.json`, before the last few earlier ones.
 */
export async function generateDevKeys(dir: string, alg: DevAlgorithm = 'EdDSA'): Promise<DevSigningKey> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const files = devKeyFiles(dir);
  const jwk = await publicJwkOf(privateKey);
  const previous = (await readJwks(files.jwks)).keys.filter((k) => k.kid !== jwk.kid).slice(0, KEEP_PREVIOUS_KEYS);
  // Public keys first: a token signed with the new key must never meet a JWKS that lacks it.
  await writeAtomically(files.jwks, JSON.stringify({ keys: [jwk, ...previous] }, null, 2) + '\n', 0o644);
  await writeAtomically(files.privateKey, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600);
  return { key: privateKey, kid: jwk.kid!, alg };
}

export async function loadDevSigningKey(dir: string): Promise<DevSigningKey> {
  const key = createPrivateKey(await readFile(devKeyFiles(dir).privateKey, 'utf8'));
  const jwk = await publicJwkOf(key);
  return { key, kid: jwk.kid!, alg: algorithmOf(key) };
}

const ensuring = new Map<string, Promise<{ created: boolean }>>();

/**
 * Creates the development keys unless they exist. Safe when several routes (or a gateway and the CLI)
 * ask at once: the private key file is created exclusively, and calls in one process share one promise.
 */
export function ensureDevKeys(dir: string, alg: DevAlgorithm = 'EdDSA'): Promise<{ created: boolean }> {
  const abs = path.resolve(dir);
  let pending = ensuring.get(abs);
  if (!pending) {
    pending = ensureOnce(abs, alg).finally(() => ensuring.delete(abs));
    ensuring.set(abs, pending);
  }
  return pending;
}

async function ensureOnce(dir: string, alg: DevAlgorithm): Promise<{ created: boolean }> {
  const files = devKeyFiles(dir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const tmp = `${files.privateKey}.${process.pid}.tmp`;
  await writeFile(tmp, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, { mode: 0o600 });
  await chmod(tmp, 0o600);
  let created = true;
  try {
    // link() fails if the name exists: the key file appears complete, and only one creator wins.
    await link(tmp, files.privateKey);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    created = false;
  } finally {
    await unlink(tmp);
  }
  // Publish the current key's public half if the JWKS lacks it (new keys, or a JWKS deleted by hand).
  const current = await loadDevSigningKey(dir);
  const jwks = await readJwks(files.jwks);
  if (!jwks.keys.some((k) => k.kid === current.kid)) {
    const jwk = await publicJwkOf(current.key);
    await writeAtomically(files.jwks, JSON.stringify({ keys: [jwk, ...jwks.keys] }, null, 2) + '\n', 0o644);
  }
  return { created };
}

/** The public keys the gateway serves at `/.well-known/jwks.json`. */
export async function readDevJwks(dir: string): Promise<JSONWebKeySet> {
  return readJwks(devKeyFiles(dir).jwks);
}

/**
 * Where the `jwt` plugin's verification keys come from, resolved once when the plugin is built.
 *
 * Each source also narrows the algorithm allow-list to the algorithms its keys can actually verify: an
 * RSA public key is never offered to an HS256 token (the classic RS/HS confusion, where the public key is
 * used as an HMAC secret), and an HMAC secret is never offered to an RS256 token.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, createRemoteJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { AuthError } from './challenge.ts';
import { devKeyFiles, ensureDevKeys, type DevAlgorithm } from './dev-keys.ts';

export const JWS_ALGORITHMS = [
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
] as const;
export type JwsAlgorithm = (typeof JWS_ALGORITHMS)[number];

const HMAC = new Set<string>(['HS256', 'HS384', 'HS512']);
const RSA = new Set<string>(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']);
const EC_CURVE: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };
const EDDSA = new Set<string>(['EdDSA', 'Ed25519']);

export interface KeysConfig {
  jwksUrl?: string;
  jwksFile?: string;
  publicKeyFile?: string;
  secret?: string;
  dev?: { dir: string; alg: DevAlgorithm };
  cooldown: number;
  cacheMaxAge: number;
  timeout: number;
}

export interface KeySource {
  /** What jose verifies with. */
  key: KeyObject | Uint8Array | JWTVerifyGetKey;
  /** The configured allow-list narrowed to what these keys can verify; never empty. */
  algorithms: string[];
  /** For logs: where the keys come from (never the key itself). */
  description: string;
  /** Folder of the development issuer's keys, when that is the source. */
  devDir?: string;
}

/** Algorithms a PEM public key can verify, by its type (and curve). */
function algorithmsForPublicKey(key: KeyObject): (alg: string) => boolean {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return (alg) => RSA.has(alg);
    case 'rsa-pss':
      return (alg) => alg.startsWith('PS');
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      return (alg) => EC_CURVE[alg] === curve;
    }
    case 'ed25519':
      return (alg) => EDDSA.has(alg);
    default:
      throw new Error(`unsupported public key type "${key.asymmetricKeyType}" (use RSA, EC P-256/384/521 or Ed25519)`);
  }
}

function narrow(configured: readonly string[], fits: (alg: string) => boolean, what: string): string[] {
  const usable = configured.filter(fits);
  if (usable.length === 0) {
    throw new Error(`none of the allowed algorithms (${configured.join(', ')}) can be verified with ${what}`);
  }
  return usable;
}

/**
 * A JWKS read from a file, re-read when a token names a key it lacks and the file changed since: a
 * rotation (`npm run token -- keygen`) is picked up without a restart, and a token with an unknown `kid`
 * costs one stat.
 */
function reloadingLocalJwks(file: string): JWTVerifyGetKey {
  let mtimeMs = -1;
  let jwks: JWTVerifyGetKey = () => { throw new errors.JWKSNoMatchingKey(); };
  const load = () => {
    const stat = statSync(file);
    if (stat.mtimeMs === mtimeMs) return false;
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet;
    jwks = createLocalJWKSet(parsed);
    mtimeMs = stat.mtimeMs;
    return true;
  };
  load();
  return async function localJwksKey(header, token) {
    try {
      return await jwks(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      let changed = false;
      try { changed = load(); } catch { /* a file being replaced: keep the keys we have */ }
      if (!changed) throw err;
      return jwks(header, token);
    }
  };
}

/** Fetch problems (timeout, HTTP error, bad JSON) mean "cannot decide", not "bad token": 503, not 401. */
function remoteJwks(url: string, cfg: KeysConfig): JWTVerifyGetKey & { reload(): Promise<void> } {
  const remote = createRemoteJWKSet(new URL(url), {
    cooldownDuration: cfg.cooldown,
    cacheMaxAge: cfg.cacheMaxAge,
    timeoutDuration: cfg.timeout,
  });
  const getKey = async function remoteJwksKey(header: Parameters<JWTVerifyGetKey>[0], token: Parameters<JWTVerifyGetKey>[1]) {
    try {
      return await remote(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported) throw err;
      throw new AuthError('GW_ERR_AUTH_UNAVAILABLE', `The identity provider's keys could not be fetched (${(err as Error).message}).`);
    }
  };
  return Object.assign(getKey, { reload: () => remote.reload() });
}

/**
 * Resolves the configured key source. Relative file paths resolve against `configDir`.
 * `createDevKeys: false` (the CLI's `inspect`) refuses to invent keys that do not exist yet.
 */
export async function loadKeySource(
  cfg: KeysConfig,
  algorithms: readonly string[],
  opts: { configDir: string; createDevKeys?: boolean; onDevKeysCreated?: (dir: string) => void },
): Promise<KeySource> {
  const resolve = (p: string) => path.resolve(opts.configDir, p);
  if (cfg.secret !== undefined) {
    if (Buffer.byteLength(cfg.secret) < 32) throw new Error('keys.secret must be at least 32 bytes (256 bits) long');
    return {
      key: new TextEncoder().encode(cfg.secret),
      algorithms: narrow(algorithms, (a) => HMAC.has(a), 'an HMAC secret (allow HS256, HS384 or HS512)'),
      description: 'HMAC secret',
    };
  }
  if (cfg.publicKeyFile !== undefined) {
    const file = resolve(cfg.publicKeyFile);
    const key = createPublicKey(readFileSync(file, 'utf8'));
    return {
      key,
      algorithms: narrow(algorithms, algorithmsForPublicKey(key), `the ${key.asymmetricKeyType} key in ${file}`),
      description: `public key ${file}`,
    };
  }
  // JWKS never hold HMAC secrets here (jose refuses symmetric algorithms for a key set).
  const asymmetric = (a: string) => !HMAC.has(a);
  if (cfg.jwksFile !== undefined) {
    const file = resolve(cfg.jwksFile);
    return { key: reloadingLocalJwks(file), algorithms: narrow(algorithms, asymmetric, 'a JWKS'), description: `JWKS file ${file}` };
  }
  if (cfg.jwksUrl !== undefined) {
    return { key: remoteJwks(cfg.jwksUrl, cfg), algorithms: narrow(algorithms, asymmetric, 'a JWKS'), description: `JWKS ${cfg.jwksUrl}` };
  }
  if (cfg.dev !== undefined) {
    const dir = resolve(cfg.dev.dir);
    if (opts.createDevKeys === false) {
      statSync(devKeyFiles(dir).jwks); // throws ENOENT with the path: nothing to verify with
    } else {
      const { created } = await ensureDevKeys(dir, cfg.dev.alg);
      if (created) opts.onDevKeysCreated?.(dir);
    }
    return {
      key: reloadingLocalJwks(devKeyFiles(dir).jwks),
      algorithms: narrow(algorithms, (a) => a === 'EdDSA' || a === 'Ed25519' || a === 'ES256', 'the development keys (allow EdDSA or ES256)'),
      description: `development issuer keys in ${dir}`,
      devDir: dir,
    };
  }
  throw new Error('keys: set one of jwksUrl, jwksFile, publicKeyFile, secret or dev');
}

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
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
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
const JWK_CURVE_ALG: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };

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

/** Algorithms the keys of a JWKS can verify: each key's `alg` when it names one, else by type and curve. */
function jwksAlgorithms(jwks: JSONWebKeySet): Set<string> {
  const out = new Set<string>();
  for (const k of Array.isArray(jwks.keys) ? jwks.keys : []) {
    if (typeof k.alg === 'string') out.add(k.alg);
    else if (k.kty === 'RSA') for (const a of RSA) out.add(a);
    else if (k.kty === 'EC') out.add(JWK_CURVE_ALG[k.crv ?? ''] ?? '');
    else if (k.kty === 'OKP' && k.crv === 'Ed25519') for (const a of EDDSA) out.add(a);
  }
  out.delete('');
  return out;
}

/**
 * A JWKS file whose keys verify none of the allowed algorithms would refuse every token, but only at
 * the first request: refuse it when the plugin is built (at start, reload and `--check`) instead. The
 * allow-list is not narrowed to today's keys: a rotation may add keys of another allowed type.
 */
function assertJwksFileCovers(file: string, algorithms: readonly string[]): void {
  const has = jwksAlgorithms(JSON.parse(readFileSync(file, 'utf8')) as JSONWebKeySet);
  if (!algorithms.some((a) => has.has(a))) {
    throw new Error(`none of the allowed algorithms (${algorithms.join(', ')}) can be verified with the keys in ${file} (they verify ${[...has].join(', ') || 'nothing'})`);
  }
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

/**
 * A JWKS endpoint: fetched at start, refetched once `cacheMaxAge` has passed, and when a token names a
 * `kid` the set lacks, but never twice within `cooldown`. The cooldown counts from the last fetch
 * *attempt*, failed or not: an identity provider that answers 500 or refuses connections is not asked
 * again for every token with an unknown `kid` (jose's own remote set backs off only after successes).
 *
 * Fetch problems (timeout, HTTP error, bad JSON, no connection) mean "cannot decide", not "bad token":
 * 503 GW_ERR_AUTH_UNAVAILABLE, not 401. During the backoff after a failure:
 * - with no usable key set (never fetched, or older than `cacheMaxAge`), every token is that 503,
 *   without a fetch;
 * - with a usable set, tokens whose `kid` it has verify as usual; an unknown `kid` is the same 503
 *   (the key may have been rotated in at the IdP we cannot reach), still without a fetch.
 * After a successful fetch, an unknown `kid` within the cooldown is a plain 401 GW_ERR_TOKEN_SIGNATURE.
 */
function remoteJwks(url: string, cfg: KeysConfig): JWTVerifyGetKey & { reload(): Promise<void> } {
  const href = new URL(url).href;
  let local: JWTVerifyGetKey | undefined;
  let fetchedAt = -Infinity; // last success
  let attemptedAt = -Infinity; // last completed attempt, success or failure
  let lastFailure: string | undefined; // why the last attempt failed; undefined after a success
  let pending: Promise<void> | undefined;

  const unavailable = (why: string) => new AuthError('GW_ERR_AUTH_UNAVAILABLE', `The identity provider's keys could not be fetched (${why}).`);
  const coolingDown = () => Date.now() < attemptedAt + cfg.cooldown;
  const fresh = () => local !== undefined && Date.now() < fetchedAt + cfg.cacheMaxAge;

  async function fetchOnce(): Promise<void> {
    try {
      const res = await fetch(href, {
        redirect: 'manual',
        headers: { accept: 'application/json, application/jwk-set+json' },
        signal: AbortSignal.timeout(cfg.timeout),
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      local = createLocalJWKSet((await res.json()) as JSONWebKeySet);
      fetchedAt = Date.now();
      lastFailure = undefined;
    } catch (err) {
      // `fetch failed` says little; its cause's code (ECONNREFUSED, ECONNRESET …) says what happened.
      const e = err as Error & { cause?: { code?: unknown } };
      lastFailure = e.name === 'TimeoutError' ? `no answer within ${cfg.timeout}ms` : typeof e.cause?.code === 'string' ? e.cause.code : e.message;
      throw unavailable(lastFailure);
    } finally {
      attemptedAt = Date.now();
    }
  }

  /** One fetch at a time: concurrent callers share it. Throws AuthError GW_ERR_AUTH_UNAVAILABLE. */
  function reload(): Promise<void> {
    pending ??= fetchOnce().finally(() => { pending = undefined; });
    return pending;
  }

  async function remoteJwksKey(header: Parameters<JWTVerifyGetKey>[0], token: Parameters<JWTVerifyGetKey>[1]) {
    if (!fresh()) {
      if (pending === undefined && coolingDown() && lastFailure !== undefined) {
        throw unavailable(`${lastFailure}; next attempt in ${Math.ceil((attemptedAt + cfg.cooldown - Date.now()) / 1000)}s`);
      }
      await reload();
    }
    try {
      return await local!(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey)) throw err;
      if (pending === undefined && coolingDown()) {
        if (lastFailure === undefined) throw err;
        throw unavailable(`${lastFailure}; the token's key is not in the last key set fetched`);
      }
      await reload();
      return local!(header, token);
    }
  }
  return Object.assign(remoteJwksKey, { reload });
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
    const key = reloadingLocalJwks(file);
    const usable = narrow(algorithms, asymmetric, 'a JWKS');
    assertJwksFileCovers(file, usable);
    return { key, algorithms: usable, description: `JWKS file ${file}` };
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
    const usable = narrow(algorithms, (a) => a === 'EdDSA' || a === 'Ed25519' || a === 'ES256', 'the development keys (allow EdDSA or ES256)');
    // e.g. `algorithms: [ES256]` with EdDSA development keys (`keys.dev.alg`).
    assertJwksFileCovers(devKeyFiles(dir).jwks, usable);
    return {
      key: reloadingLocalJwks(devKeyFiles(dir).jwks),
      algorithms: usable,
      description: `development issuer keys in ${dir}`,
      devDir: dir,
    };
  }
  throw new Error('keys: set one of jwksUrl, jwksFile, publicKeyFile, secret or dev');
}

/**
 * The authorization server's signing keys, and the public half the `jwt` plugin verifies with.
 *
 * - `dir` (default `.dev-keys`, the development issuer's folder): the key `npm run token -- keygen`
 *   makes and rotates. It is created on first use, like the development issuer's. The private key is
 *   re-read when the file changes, so a rotation takes effect without a restart, and `jwks.json`
 *   (which keeps the previous public keys) verifies tokens signed before it.
 * - `privateKeyFile`: a PEM private key (Ed25519, EC P-256/384/521 or RSA) managed elsewhere.
 *
 * Sharing the development issuer's folder is deliberate: a `jwt` plugin with `keys: { dev: … }` already
 * trusts those keys, and `npm run token -- revoke` already writes that folder's `revoked.txt`.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createLocalJWKSet, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import { devKeyFiles, ensureDevKeys, type DevAlgorithm } from '../dev-keys.ts';

export interface SigningKeysConfig {
  dir?: string;
  privateKeyFile?: string;
  alg: DevAlgorithm;
}

export interface SigningKeys {
  /** The current key: what new tokens are signed with. */
  current(): { key: KeyObject; kid: string; alg: string };
  /** Every public key that may have signed a token still valid. */
  jwks(): JSONWebKeySet;
  readonly verificationKey: JWTVerifyGetKey;
  readonly algorithms: string[];
  /** The key folder, when keys come from one. */
  readonly dir?: string;
  readonly description: string;
}

function algorithmOf(key: KeyObject): string {
  switch (key.asymmetricKeyType) {
    case 'ed25519': return 'EdDSA';
    case 'rsa': return 'RS256';
    case 'ec': {
      const alg = ({ prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' } as Record<string, string>)[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (alg) return alg;
      break;
    }
  }
  throw new Error(`signing keys must be Ed25519, EC P-256/384/521 or RSA (found ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve ?? ''})`.trim());
}

function publicJwk(key: KeyObject, alg: string): JWK {
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as JWK;
  return { ...jwk, kid: thumbprint(key), alg, use: 'sig' };
}

/** Something read from a file, read again when the file's mtime changes. */
function fileBacked<T>(file: string, read: (text: string) => T): () => T {
  let mtimeMs = -1;
  let value: T;
  return () => {
    let m: number;
    try {
      m = statSync(file).mtimeMs;
    } catch (err) {
      if (mtimeMs >= 0) return value; // being replaced by a rename: keep what we have
      throw err;
    }
    if (m !== mtimeMs) {
      value = read(readFileSync(file, 'utf8'));
      mtimeMs = m;
    }
    return value;
  };
}

/**
 * `create: false` (the token CLI's `inspect`) refuses to invent a key folder that does not exist yet:
 * keys made there would verify nothing the gateway issued, and would surprise the gateway's next start.
 */
export async function loadSigningKeys(
  cfg: SigningKeysConfig, configDir: string, opts: { onCreated?: (dir: string) => void; create?: boolean } = {},
): Promise<SigningKeys> {
  if (cfg.privateKeyFile !== undefined) {
    const file = path.resolve(configDir, cfg.privateKeyFile);
    const key = createPrivateKey(readFileSync(file, 'utf8'));
    const alg = algorithmOf(key);
    const jwk = publicJwk(key, alg);
    const jwks = { keys: [jwk] };
    return {
      current: () => ({ key, kid: jwk.kid!, alg }),
      jwks: () => jwks,
      verificationKey: createLocalJWKSet(jwks),
      algorithms: [alg],
      description: `private key ${file}`,
    };
  }
  const dir = path.resolve(configDir, cfg.dir ?? '.dev-keys');
  const files = devKeyFiles(dir);
  if (opts.create === false) {
    if (!existsSync(files.jwks)) {
      throw new Error(`the authorization server's key folder ${dir} has no jwks.json: the gateway creates it on its first start, so no token it issued can be verified yet`);
    }
  } else {
    const { created } = await ensureDevKeys(dir, cfg.alg);
    if (created) opts.onCreated?.(dir);
  }
  // Re-read when `npm run token -- keygen` rotates: it writes jwks.json (new public key first) before
  // private.pem, so a token signed with the new key never meets a key set that lacks it.
  const readCurrent = fileBacked(files.privateKey, (pem) => {
    const key = createPrivateKey(pem);
    return { key, alg: algorithmOf(key), kid: thumbprint(key) };
  });
  const readJwks = fileBacked(files.jwks, (text) => {
    const set = JSON.parse(text) as JSONWebKeySet;
    return { set, verify: createLocalJWKSet(set) };
  });
  readCurrent();
  readJwks();
  return {
    current: readCurrent,
    jwks: () => readJwks().set,
    verificationKey: (header, token) => readJwks().verify(header, token),
    // The folder's keys are Ed25519 or P-256 (keygen --alg), and a rotation may switch between them.
    algorithms: ['EdDSA', 'ES256'],
    dir,
    description: `key folder ${dir}`,
  };
}

/** RFC 7638 thumbprint of the public key (what dev-keys.ts uses as `kid`), computed synchronously. */
function thumbprint(key: KeyObject): string {
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as Record<string, string>;
  const members = jwk.kty === 'RSA' ? ['e', 'kty', 'n'] : jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x'];
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])));
  return createHash('sha256').update(canonical).digest('base64url');
}

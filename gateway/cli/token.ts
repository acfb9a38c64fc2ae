/**
 * `npm run token -- <command>`: the development issuer's and the operator's token tool.
 *
 *   keygen  [--alg EdDSA|ES256] [--dir DIR]                 new signing key (rotation keeps old public keys)
 *   create  --tenant T --sub S [--scope S]… [--ttl 30d] [--aud A] [--iss I] [--dir DIR]
 *                                                           prints a signed JWT (with a jti) on stdout
 *   inspect <jwt> [--config FILE]                          decoded claims, expiry, and whether each jwt
 *                                                           route of that gateway would accept it, and why not
 *   revoke  <jti> [--config FILE] [--file FILE]            adds the jti to the revocation list (Redis when
 *                                                           the config has redis.url, else the list file)
 *
 * Defaults come from the first `jwt` plugin with `keys: { dev: … }` in ./gateway.yaml (or --config), so
 * a token created here is accepted by the shipped gateway. Only the token goes to stdout; everything
 * else goes to stderr, so `TOKEN=$(npm run -s token -- create …)` works.
 */
import { randomUUID } from 'node:crypto';
import { appendFile, mkdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import pino from 'pino';
import { loadConfigFile, type LoadedConfig } from '../../config/load.ts';
import { parseDuration } from '../../config/units.ts';
import type { ListenerInfo, RouteInfo } from '../contract.ts';
import { AuthError } from '../../plugins/jwt/challenge.ts';
import {
  DEV_ALGORITHMS, DEV_AUDIENCE, DEV_DIR, DEV_ISSUER, devKeyFiles, ensureDevKeys, generateDevKeys, loadDevSigningKey,
  type DevAlgorithm,
} from '../../plugins/jwt/dev-keys.ts';
import { createJwtVerifier, JwtConfigSchema, type JwtConfig } from '../../plugins/jwt/index.ts';
import { revokedKey } from '../../plugins/jwt/revocation.ts';
import { connectRedisOnce } from './redis-connect.ts';
import { offlineAuthorizationTrust } from '../oauth/offline-trust.ts';

const DEFAULT_TENANT_PATTERN = /^[a-z0-9-]{1,64}$/;

class UsageError extends Error {}

const say = (line: string) => process.stderr.write(line + '\n');

/** Every `jwt` plugin of a gateway config, with the route it guards. */
interface JwtRoute {
  route: RouteInfo;
  config: JwtConfig;
}

function listenerInfo(l: LoadedConfig['config']['listeners'][number]): ListenerInfo {
  const host = l.host === '0.0.0.0' || l.host === '::' ? 'localhost' : l.host.includes(':') ? `[${l.host}]` : l.host;
  return { name: l.name, host: l.host, port: l.port, publicUrl: l.publicUrl ?? `http://${host}:${l.port}` };
}

function jwtRoutes(loaded: LoadedConfig): JwtRoute[] {
  const listeners = new Map(loaded.config.listeners.map((l) => [l.name, listenerInfo(l)]));
  const out: JwtRoute[] = [];
  for (const [i, r] of loaded.config.routes.entries()) {
    for (const [j, ref] of r.plugins.entries()) {
      if (ref.type !== 'jwt') continue;
      const { type: _type, ...options } = ref;
      const parsed = JwtConfigSchema.safeParse(options);
      if (!parsed.success) throw new UsageError(`routes[${i}].plugins[${j}] (jwt): ${parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`);
      const routePath = r.path.length > 1 ? r.path.replace(/\/+$/, '') : r.path;
      out.push({
        route: { name: r.name ?? `${r.listener}${routePath}`, path: routePath, listener: listeners.get(r.listener)!, upstream: r.upstream },
        config: parsed.data,
      });
    }
  }
  return out;
}

/** `--config` if given (must exist), else ./gateway.yaml when there is one. */
async function loadConfig(file: string | undefined): Promise<LoadedConfig | undefined> {
  const chosen = file ?? (existsSync('gateway.yaml') ? 'gateway.yaml' : undefined);
  if (!chosen) return undefined;
  return loadConfigFile(chosen, process.env);
}

/** Issuer, audience and key folder of the config's development issuer, or the shipped defaults. */
function devDefaults(loaded: LoadedConfig | undefined): { dir: string; alg: DevAlgorithm; issuer: string; audience: string } {
  const dev = loaded ? jwtRoutes(loaded).find((j) => j.config.keys?.dev) : undefined;
  if (!dev || !loaded) return { dir: DEV_DIR, alg: 'EdDSA', issuer: DEV_ISSUER, audience: DEV_AUDIENCE };
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  return {
    dir: path.resolve(loaded.dir, dev.config.keys!.dev!.dir),
    alg: dev.config.keys!.dev!.alg,
    issuer: first(dev.config.issuer)!,
    audience: first(dev.config.audience) ?? dev.config.resource ?? `${dev.route.listener.publicUrl}${dev.route.path}`,
  };
}

async function keygen(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { alg: { type: 'string' }, dir: { type: 'string' }, config: { type: 'string' } } });
  if (values.alg !== undefined && !(DEV_ALGORITHMS as readonly string[]).includes(values.alg)) {
    throw new UsageError(`--alg must be one of ${DEV_ALGORITHMS.join(', ')}`);
  }
  const defaults = devDefaults(values.dir ? undefined : await loadConfig(values.config));
  const dir = path.resolve(values.dir ?? defaults.dir);
  const { kid, alg } = await generateDevKeys(dir, (values.alg as DevAlgorithm | undefined) ?? defaults.alg);
  const files = devKeyFiles(dir);
  say(`New ${alg} signing key ${kid}`);
  say(`  private key: ${files.privateKey} (mode 0600, keep it secret)`);
  say(`  public keys: ${files.jwks} (earlier public keys kept, so tokens signed before stay valid)`);
  say('A running gateway picks the new key up by itself. Mint a token: npm run token -- create --tenant acme --sub alice');
}

async function create(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      tenant: { type: 'string' }, sub: { type: 'string' }, scope: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '30d' }, aud: { type: 'string' }, iss: { type: 'string' },
      dir: { type: 'string' }, config: { type: 'string' }, jti: { type: 'string' },
      'tenant-claim': { type: 'string', default: 'tenant_id' },
    },
  });
  if (!values.tenant || !values.sub) throw new UsageError('create needs --tenant and --sub');
  if (!DEFAULT_TENANT_PATTERN.test(values.tenant)) throw new UsageError(`--tenant must match ${DEFAULT_TENANT_PATTERN.source} (the gateway refuses anything else)`);
  const ttlMs = parseDuration(values.ttl);
  if (!ttlMs) throw new UsageError('--ttl must be a duration such as 30m, 12h or 30d');
  const defaults = devDefaults(await loadConfig(values.config));
  const dir = path.resolve(values.dir ?? defaults.dir);
  const { created } = await ensureDevKeys(dir, defaults.alg);
  if (created) say(`Created development signing keys in ${dir} (private key mode 0600).`);
  const signing = await loadDevSigningKey(dir);
  const scopes = (values.scope ?? []).flatMap((s) => s.split(/[\s,]+/)).filter(Boolean);
  const now = Math.floor(Date.now() / 1000);
  const jti = values.jti ?? randomUUID();
  const claims: Record<string, unknown> = { [values['tenant-claim']]: values.tenant };
  if (scopes.length) claims.scope = scopes.join(' ');
  const jwt = await new SignJWT(claims)
    .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: 'JWT' })
    .setIssuer(values.iss ?? defaults.issuer)
    .setAudience(values.aud ?? defaults.audience)
    .setSubject(values.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.ceil(ttlMs / 1000))
    .setJti(jti)
    .sign(signing.key);
  say(`Token for tenant "${values.tenant}", subject "${values.sub}", jti ${jti}, expires ${new Date((now + Math.ceil(ttlMs / 1000)) * 1000).toISOString()}`);
  process.stdout.write(jwt + '\n');
}

function describeExpiry(exp: number | undefined, nowS: number): string {
  if (exp === undefined) return 'never (no exp claim)';
  const left = exp - nowS;
  const at = new Date(exp * 1000).toISOString();
  if (left <= 0) return `${at} (expired ${Math.round(-left / 60)} min ago)`;
  return `${at} (in ${left >= 86_400 ? `${(left / 86_400).toFixed(1)} days` : `${Math.round(left / 60)} min`})`;
}

async function inspect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' } } });
  const token = positionals[0];
  if (!token) throw new UsageError('inspect needs a token: npm run token -- inspect <jwt>');
  let header: unknown;
  let claims: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch {
    console.log('Not a decodable JWT.');
    return 1;
  }
  const now = Math.floor(Date.now() / 1000);
  console.log(`header: ${JSON.stringify(header)}`);
  console.log(`claims: ${JSON.stringify(claims, null, 2)}`);
  console.log(`expires: ${describeExpiry(claims.exp as number | undefined, now)}`);
  const loaded = await loadConfig(values.config);
  if (!loaded) {
    console.log('No gateway.yaml here (use --config FILE) to check whether a gateway would accept it.');
    return 0;
  }
  const routes = jwtRoutes(loaded);
  if (routes.length === 0) {
    console.log(`${loaded.source} has no jwt plugin: every route is open.`);
    return 0;
  }
  // Redis-held revocations are checked too when the config has Redis: without it, no verdict.
  const redis = loaded.config.redis?.url
    ? await connectRedisOnce(loaded.config.redis.url, `Start Redis, or fix redis.url in ${loaded.source}: a token's revocation is recorded there, so it cannot be judged without it.`)
    : undefined;
  const log = pino({ level: 'silent' });
  let accepted = 0;
  try {
    // Routes with `authorizationServer: gateway` also trust the gateway's own authorization server.
    const authorizationServer = await offlineAuthorizationTrust(loaded, new Map(loaded.config.listeners.map((l) => [l.name, listenerInfo(l)])));
    for (const { route, config } of routes) {
      const verifier = await createJwtVerifier(config, {
        route, configDir: loaded.dir, log, createDevKeys: false,
        shared: { redis, redisKeyPrefix: loaded.config.redis?.keyPrefix ?? 'mcpgw:', authorizationServer },
      });
      const where = `${route.listener.publicUrl}${route.path} (route ${route.name})`;
      try {
        const verified = await verifier.authenticate(token);
        if (verified.missingScope !== undefined) {
          console.log(`REFUSED by ${where}: GW_ERR_INSUFFICIENT_SCOPE: needs scope(s) ${verified.missingScope}`);
        } else {
          accepted++;
          const p = verified.principal;
          console.log(`ACCEPTED by ${where}: tenant ${p.tenant}, subject ${p.subject}, scopes [${p.scopes.join(' ')}]`);
        }
      } catch (err) {
        const e = err instanceof AuthError ? err : new AuthError('GW_ERR_TOKEN_INVALID', (err as Error).message);
        console.log(`REFUSED by ${where}: ${e.code}: ${e.message}`);
      } finally {
        await verifier.close();
      }
    }
  } finally {
    redis?.disconnect();
  }
  return accepted > 0 ? 0 : 1;
}

async function revoke(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string' }, file: { type: 'string' } } });
  const jti = positionals[0];
  if (!jti || /\s|#/.test(jti)) throw new UsageError('revoke needs one token id (the jti claim; see inspect)');
  const loaded = values.file ? undefined : await loadConfig(values.config);
  const redisUrl = loaded?.config.redis?.url;
  if (redisUrl) {
    const redis = await connectRedisOnce(redisUrl, `Start Redis, or fix redis.url in ${loaded.source}. Nothing was revoked: with redis.url set, gateways read revocations from Redis, not from a file.`);
    try {
      const key = revokedKey(loaded.config.redis?.keyPrefix ?? 'mcpgw:');
      await redis.sadd(key, jti);
      // Running gateways add it to their in-memory list at once; they also re-read the set periodically.
      await redis.publish(key, jti);
      say(`Revoked ${jti} (Redis set ${key}).`);
    } finally {
      redis.disconnect();
    }
    return;
  }
  let file = values.file;
  if (!file && loaded) {
    const jwt = jwtRoutes(loaded).find((j) => j.config.revocation.file || j.config.keys?.dev);
    if (jwt) file = path.resolve(loaded.dir, jwt.config.revocation.file ?? path.join(jwt.config.keys!.dev!.dir, 'revoked.txt'));
  }
  file ??= devKeyFiles(path.resolve(DEV_DIR)).revoked;
  await mkdir(path.dirname(file), { recursive: true });
  const exists = await stat(file).then(() => true, () => false);
  await appendFile(file, `${exists ? '' : '# revoked token ids (jti), one a line; read by the gateway without restart\n'}${jti}  # ${new Date().toISOString()}\n`);
  say(`Revoked ${jti} (${file}). Running gateways pick it up within a second or two.`);
}

const USAGE = `usage: npm run token -- <command>
  keygen  [--alg EdDSA|ES256] [--dir .dev-keys]
  create  --tenant T --sub S [--scope S]... [--ttl 30d] [--aud A] [--iss I] [--jti ID] [--config gateway.yaml]
  inspect <jwt> [--config gateway.yaml]
  revoke  <jti> [--config gateway.yaml | --file revoked.txt]`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'keygen': await keygen(rest); return 0;
      case 'create': await create(rest); return 0;
      case 'inspect': return await inspect(rest);
      case 'revoke': await revoke(rest); return 0;
      default:
        say(USAGE);
        return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
    }
  } catch (err) {
    const usage = err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    say(`token ${command}: ${(err as Error).message}`);
    if (usage) say(USAGE);
    return usage ? 2 : 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}

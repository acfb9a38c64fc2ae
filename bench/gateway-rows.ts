/**
 * The gateway rows: one gateway process per plugin configuration, each from its own gateway.yaml in a
 * temp folder, started the way an operator starts it (`node gateway/main.ts --config <file>`).
 *
 * A row whose plugins are not (yet) registered in plugins/index.ts is skipped with a note rather than
 * failing the bench, so the bench runs at every stage of the project.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SignJWT } from 'jose';
import { stringify } from 'yaml';
import { freePort, readyOrStop, spawnChild, waitForPort, type BenchChild } from './processes.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const gatewayMain = path.join(repoRoot, 'gateway', 'main.ts');

/** Claims of the bench's tokens; the jwt plugin is configured to expect exactly these. */
const ISSUER = 'https://bench.mcp-gateway.invalid';
const AUDIENCE = 'mcp-gateway-bench';
const TENANT = 'bench';

export interface GatewayVariant {
  id: string;
  label: string;
  /** Plugin types the row needs; the row is skipped when one is not registered. */
  needs: string[];
  /** The route's `plugins:` list. */
  plugins(ctx: VariantContext): Array<Record<string, unknown>>;
  /** Whether requests carry the bench's bearer token. */
  auth: boolean;
}

export interface VariantContext {
  /** Folder of this gateway's config (audit files and keys go here). */
  dir: string;
}

const audit = () => ({ type: 'audit', destination: '/dev/null' });
const token = () => ({ type: 'token', sources: ['header'] });
const jwt = () => ({
  type: 'jwt',
  issuer: ISSUER,
  audience: AUDIENCE,
  algorithms: ['HS256'],
  // Interpolated by the gateway from the child's environment, as an operator would write it.
  keys: { secret: '${BENCH_JWT_SECRET}' },
  tenantClaim: 'tenant_id',
});
const rateLimit = () => ({
  type: 'rate-limit',
  store: 'memory',
  // A budget the bench can never spend: the row measures the limiter's bookkeeping, not refusals.
  limits: [{ name: 'bench', points: 1_000_000_000, duration: '60s' }],
});
const graphRewrite = () => ({ type: 'graph-rewrite' });

export const GATEWAY_VARIANTS: GatewayVariant[] = [
  { id: 'gateway', label: 'gateway (no plugins)', needs: [], plugins: () => [], auth: false },
  { id: 'gateway-audit', label: 'gateway + audit', needs: ['audit'], plugins: () => [audit()], auth: false },
  { id: 'gateway-auth', label: 'gateway + token+jwt', needs: ['token', 'jwt'], plugins: () => [token(), jwt()], auth: true },
  {
    id: 'gateway-full',
    label: 'gateway full pipeline',
    needs: ['token', 'jwt', 'rate-limit', 'graph-rewrite', 'audit'],
    // audit first, as plugins/audit.ts asks (it then sees every message, refused ones included).
    plugins: () => [audit(), token(), jwt(), rateLimit(), graphRewrite()],
    auth: true,
  },
];

/** Whether `node gateway/main.ts` exists yet. */
export function gatewayAvailable(): boolean {
  return existsSync(gatewayMain);
}

/** Built-in plugin types registered in plugins/index.ts (empty when it does not exist yet). */
export async function registeredPluginTypes(): Promise<Set<string>> {
  const indexFile = path.join(repoRoot, 'plugins', 'index.ts');
  if (!existsSync(indexFile)) return new Set();
  const mod = (await import(pathToFileURL(indexFile).href)) as Record<string, unknown>;
  const registry = mod.builtinPlugins ?? mod.default;
  const types = new Set<string>();
  const add = (v: unknown, key?: string) => {
    const t = (v as { type?: unknown } | undefined)?.type;
    if (typeof t === 'string') types.add(t);
    else if (key) types.add(key);
  };
  if (registry instanceof Map) for (const [k, v] of registry) add(v, String(k));
  else if (Array.isArray(registry)) for (const v of registry) add(v);
  else if (registry && typeof registry === 'object') for (const [k, v] of Object.entries(registry)) add(v, k);
  return types;
}

/** A shared secret and a token signed with it, minted fresh for each bench run. */
export interface BenchCredentials {
  secret: string;
  token: string;
}

export async function mintCredentials(): Promise<BenchCredentials> {
  const secret = randomBytes(32).toString('base64url');
  const token = await new SignJWT({ tenant_id: TENANT, scope: 'mcp:tools' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject('bench-user')
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(secret));
  return { secret, token };
}

export function gatewayYaml(opts: {
  port: number;
  upstreamUrl: string;
  plugins: Array<Record<string, unknown>>;
  /** More keys of the route (e.g. `maxResponseBytes` for the large-event row, `upstream` for the federation row). */
  route?: Record<string, unknown>;
  /** More upstreams beside `up` (the bench upstream), e.g. the federation row's federation. */
  upstreams?: Record<string, unknown>;
}): string {
  return stringify({
    listeners: [{ name: 'main', host: '127.0.0.1', port: opts.port }],
    upstreams: { up: { url: opts.upstreamUrl }, ...opts.upstreams },
    routes: [{ listener: 'main', path: '/mcp', upstream: 'up', plugins: opts.plugins, ...opts.route }],
    // The gateway's own operational log stays quiet (warn): per-request logging is the audit plugin's
    // job and has its own row, so the no-plugin row measures the proxy and nothing else.
    log: { level: 'warn', pretty: false },
    // A fixed key: without one the gateway makes a random key and warns about replicas.
    sessions: { key: randomBytes(32).toString('base64') },
    admin: { enabled: false },
    shutdownGrace: '1s',
  });
}

export interface RunningGatewayChild {
  child: BenchChild;
  port: number;
  url: string;
}

export interface GatewayChildExtras {
  /** More keys of the route, see gatewayYaml. */
  route?: Record<string, unknown>;
  /** More upstreams, see gatewayYaml. */
  upstreams?: Record<string, unknown>;
  /** Node options before the entry point (e.g. the many-streams row's memory probe). */
  nodeArgs?: string[];
}

/** Writes the row's gateway.yaml and starts the gateway; resolves once its listener accepts. */
export async function startGatewayChild(variant: GatewayVariant, baseDir: string, upstreamUrl: string, creds: BenchCredentials, extras: GatewayChildExtras = {}): Promise<RunningGatewayChild> {
  const dir = path.join(baseDir, variant.id);
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const configPath = path.join(dir, 'gateway.yaml');
  await writeFile(configPath, gatewayYaml({ port, upstreamUrl, plugins: variant.plugins({ dir }), route: extras.route, upstreams: extras.upstreams }));
  // BENCH_CPU_PROF=<dir>: each gateway writes a V8 CPU profile there when it stops (open it in
  // Chrome DevTools or VS Code) — the way to find out where a row's CPU per request goes.
  const profDir = process.env.BENCH_CPU_PROF;
  const profArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profDir)}`, `--cpu-prof-name=${variant.id}.cpuprofile`] : [];
  const child = spawnChild({
    name: variant.id,
    command: process.execPath,
    args: [...profArgs, ...(extras.nodeArgs ?? []), gatewayMain, '--config', configPath],
    cwd: dir,
    env: { BENCH_JWT_SECRET: creds.secret, NODE_ENV: 'production' },
  });
  await readyOrStop(child, waitForPort(child, port, 30_000));
  return { child, port, url: `http://127.0.0.1:${port}/mcp` };
}

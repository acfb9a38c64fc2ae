/**
 * `npm start -- --check`: builds everything a start would build, short of binding ports and spawning
 * processes, so that a file it calls OK also starts. Beyond the schema, references and plugin options
 * (config/load.ts, config/compile.ts) it:
 * - builds every route's plugin instances, then closes them: the `jwt` plugin loads its keys (and
 *   refuses `algorithms` they cannot verify), `audit` opens its destination, and so on;
 * - resolves each stdio upstream's command on PATH exactly as the spawner will, and checks its
 *   templates (`{tennant}` is refused with the variables that exist) and pool key;
 * - checks that a stdio `cwd` without templates is an existing folder;
 * - checks `sessions.key`.
 * A federation needs nothing beyond the load's own checks (its members exist and are no federations,
 * its prefixes tell members apart); its members are upstreams of their own and checked as such. It is
 * not built here: building one may reach its members, and `--check` reaches nothing.
 * Every problem found is reported, each with its config path, in one ConfigError.
 *
 * Redis, when configured, is connected to as at start (plugins need a client), but a Redis that does
 * not answer is only a warning: the gateway starts without it too.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { closePlugins, instantiateRoutes, resolvePlugins, type ResolvedRoute } from '../config/compile.ts';
import { ConfigError, loadConfigFile, type Env, type LoadedConfig } from '../config/load.ts';
import type { ListenerInfo, SharedServices } from './contract.ts';
import { ListenerPolicy } from './listener-policy.ts';
import { REDACTED_PATHS } from './logger.ts';
import { SessionSealer } from './session-seal.ts';
import { prepareCommand } from './stdio/command.ts';
import { StdioConfigError } from './stdio/errors.ts';
import type { AuthorizationService } from './oauth/server.ts';

export interface CheckSummary {
  listeners: number;
  routes: number;
  upstreams: number;
  plugins: number;
}

/** Throws ConfigError listing every problem; `warn` receives one line per warning (e.g. Redis down). */
export async function checkConfig(configPath: string, env: Env, warn: (line: string) => void): Promise<CheckSummary> {
  const loaded = await loadConfigFile(configPath, env);
  const routes = await resolvePlugins(loaded);
  const problems: string[] = [];
  try {
    SessionSealer.fromConfig(loaded.config.sessions.key, loaded.config.sessions.previousKeys);
  } catch (err) {
    problems.push(`sessions.key: ${(err as Error).message}`);
  }
  problems.push(...checkStdioUpstreams(loaded));
  problems.push(...(await buildPlugins(loaded, routes, warn)));
  if (problems.length > 0) throw new ConfigError(loaded.source, problems);
  return {
    listeners: loaded.config.listeners.length,
    routes: routes.length,
    upstreams: Object.keys(loaded.config.upstreams).length,
    plugins: routes.reduce((n, r) => n + r.plugins.length, 0),
  };
}

/** What building the stdio upstreams would refuse, without starting a process. */
function checkStdioUpstreams(loaded: LoadedConfig): string[] {
  const problems: string[] = [];
  for (const [name, upstream] of Object.entries(loaded.config.upstreams)) {
    if (!('stdio' in upstream)) continue;
    try {
      prepareCommand(name, upstream.stdio, loaded.dir);
    } catch (err) {
      if (!(err instanceof StdioConfigError)) throw err;
      problems.push(err.message);
    }
    const cwd = upstream.stdio.cwd;
    // A templated cwd names a folder per tenant or session that may not exist yet.
    if (cwd !== undefined && !/\{[a-z]+\}/.test(cwd) && !isFolder(path.resolve(loaded.dir, cwd))) {
      problems.push(`upstreams.${name}.stdio.cwd: ${path.resolve(loaded.dir, cwd)} is not an existing folder`);
    }
  }
  return problems;
}

function isFolder(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Builds and closes every route's plugins, route by route, so that each broken plugin is reported, not
 * only the first. Listeners are described with their configured ports (not bound).
 */
async function buildPlugins(loaded: LoadedConfig, routes: ResolvedRoute[], warn: (line: string) => void): Promise<string[]> {
  const listeners = new Map<string, ListenerInfo>(
    loaded.config.listeners.map((l) => {
      const policy = new ListenerPolicy(l, l.port);
      return [l.name, { name: l.name, host: l.host, port: l.port, publicUrl: policy.publicUrl }];
    }),
  );
  const log = warningLogger(warn);
  const shared: SharedServices = { redisKeyPrefix: loaded.config.redis?.keyPrefix ?? 'mcpgw:' };
  if (loaded.config.redis?.url) shared.redis = await connectRedis(loaded.config.redis.url, warn);
  const problems: string[] = [];
  // The authorization server first, as at start: jwt plugins that trust it need it.
  let authorization: AuthorizationService | undefined;
  try {
    authorization = loaded.config.authorization
      ? await (await import('./oauth/server.ts')).createAuthorizationServer(loaded, { listeners, shared, log })
      : undefined;
    if (authorization) shared.authorizationServer = authorization.trust;
  } catch (err) {
    problems.push(...(err instanceof ConfigError ? err.problems : [`authorization: ${(err as Error).message}`]));
  }
  try {
    for (const route of routes) {
      try {
        const built = await instantiateRoutes([route], { listeners, log, dir: loaded.dir, shared, source: loaded.source });
        await closePlugins(built.flatMap((b) => b.plugins), log);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(...err.problems);
      }
    }
  } finally {
    await authorization?.close();
    shared.redis?.disconnect();
  }
  return problems;
}

/** As at start: no offline queue, so plugins fail fast (and warn) instead of waiting for it. */
async function connectRedis(url: string, warn: (line: string) => void): Promise<SharedServices['redis']> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => {});
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 3_000);
    redis.once('ready', () => { clearTimeout(timer); resolve(true); });
    redis.once('end', () => { clearTimeout(timer); resolve(false); });
  });
  if (!ready) warn(`redis.url: Redis is not reachable (the gateway would start anyway; plugins that use it fall back as configured)`);
  return redis;
}

/**
 * Plugins log while they are built (the development keys being created, a JWKS not reachable):
 * warnings and errors become one plain line each, never a JSON log record.
 */
function warningLogger(warn: (line: string) => void): Logger {
  let pending = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const rec = JSON.parse(line) as { msg?: string; plugin?: string; route?: string; err?: unknown; error?: unknown };
          const where = rec.plugin ? ` (plugin ${rec.plugin}${rec.route ? ` on route ${rec.route}` : ''})` : '';
          const why = rec.err ?? rec.error;
          warn(`${rec.msg ?? ''}${why ? `: ${typeof why === 'string' ? why : JSON.stringify(why)}` : ''}${where}`);
        } catch {
          warn(line);
        }
      }
      done();
    },
  });
  return pino({ level: 'warn', base: null, timestamp: false, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, sink);
}

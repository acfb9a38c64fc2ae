/**
 * Readiness probes behind `/readyz`: is each upstream reachable, is Redis answering.
 *
 * A probe answers "could a request succeed right now", never "is the upstream healthy": an HTTP
 * upstream that answers anything (405, 204…) is reachable, unless it refuses the gateway's own
 * credential (upstream-auth.ts decides when a 401/403 means that); a stdio command that exists and is
 * executable is spawnable. Probes have no side effects: no MCP session is opened, no child is started,
 * no body is sent (the FalkorDB MCP server dies on one malformed POST).
 *
 * A federation's check reads what its members last did (it probes nothing itself). An upstream that
 * serves only as a federation member, with no route of its own, cannot make the gateway unready: its
 * federation answers without it. Its failing check is listed as `degraded` instead.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { GatewayConfig } from '../config/schema.ts';
import { describeNetError } from './net-error.ts';
import type { Federation } from './federation/index.ts';
import type { Runtime, UpstreamTarget } from './runtime.ts';
import { authRemedy, describeAuthFailure, gatewayAuthFailure } from './upstream-auth.ts';

export interface CheckResult {
  ok: boolean;
  /** Why it failed, in words an operator can act on; never contains a credential. */
  reason?: string;
  /** Extra information on success (e.g. the status an HTTP upstream answered). */
  detail?: string;
  /** Working, but not wholly (a federation with some members failing). */
  degraded?: boolean;
}

export interface ReadinessCheck {
  /** e.g. `upstream:falkordb`, `redis`, `config`. */
  name: string;
  /** Its failure degrades the gateway without making it unready (an upstream used only as a member). */
  degradesOnly?: boolean;
  check(): Promise<CheckResult>;
}

export interface ReadinessReport {
  ready: boolean;
  /** `degraded`: failing or partly failing, but not counted against `ready`. */
  checks: Array<{ name: string; ok: boolean; degraded?: boolean; reason?: string; detail?: string; ms: number }>;
}

export interface HttpProbeOptions {
  /** The upstream's name, for reasons that say which one refused the gateway. */
  upstream?: string;
  /**
   * `upstreams.<name>.headers`, sent with the probe: an upstream that checks a key answers OPTIONS with
   * 401 with a wrong one and 405 with the right one (the FalkorDB MCP server), so only a probe carrying
   * it tells the two apart. Upstreams that need no key answer 204/405 either way.
   */
  headers?: Readonly<Record<string, string>>;
  /**
   * The upstream gets signed identity headers, which a probe (no caller) cannot carry: a 401 to it
   * proves nothing, so it counts as an answer. Requests are still judged one by one.
   */
  signsIdentity?: boolean;
}

/**
 * Any HTTP answer means reachable, except one refusing the gateway's credential. Sends `OPTIONS`
 * without a body: nothing for an MCP server to parse, no session opened. Not `HEAD`: Node servers never
 * send the head of a HEAD response that only `write()`s (an SSE endpoint), so the probe would time out
 * on a healthy legacy upstream. The connection is dropped as soon as a response head arrives, in case
 * the endpoint streams anyway.
 */
export function httpProbe(url: string, timeoutMs: number, opts: HttpProbeOptions = {}): ReadinessCheck['check'] {
  const target = new URL(url);
  const configured = opts.headers ?? {};
  const sendsCredential = Object.keys(configured).length > 0;
  const name = opts.upstream ?? target.host;
  // The reason text must not carry credentials that may sit in the URL's userinfo or query.
  const shown = `${target.protocol}//${target.host}${target.pathname}`;
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return () =>
    new Promise<CheckResult>((resolve) => {
      let settled = false;
      const finish = (r: CheckResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        resolve(r);
      };
      const req = send(target, { method: 'OPTIONS', agent: false, headers: { ...configured, accept: 'application/json, text/event-stream' } });
      const timer = setTimeout(() => finish({ ok: false, reason: `${shown} did not answer within ${timeoutMs}ms` }), timeoutMs);
      req.on('response', (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        const failure = opts.signsIdentity
          ? undefined
          : gatewayAuthFailure(status, res.headers['www-authenticate'] !== undefined, { sendsCredential, signsIdentity: false });
        if (failure) {
          return finish({ ok: false, reason: `${describeAuthFailure(name, failure, status)} at ${shown}; ${authRemedy(name, failure)}` });
        }
        finish({ ok: true, detail: `${shown} answered HTTP ${status}` });
      });
      req.on('error', (err) => {
        const cause = describeNetError(err);
        finish({ ok: false, reason: `${shown} unreachable: ${cause.code ?? cause.message}` });
      });
      req.end();
    });
}

/** Probe options for a running upstream: its name, configured headers and whether it signs identity. */
export function probeOptionsFor(upstream: UpstreamTarget): HttpProbeOptions {
  return { upstream: upstream.name, headers: upstream.requestHeaders(undefined), signsIdentity: upstream.identityPrefix !== undefined };
}

/**
 * The command can be spawned: a path (absolute, or relative to `cwd`) to an executable file, or a bare
 * name found as an executable file in one of `pathDirs` (searched in order, as the spawner does).
 */
export function commandProbe(command: string, pathDirs: readonly string[], cwd: string = process.cwd()): ReadinessCheck['check'] {
  return async () => {
    if (command.includes('/') || command.includes(path.sep)) {
      const file = path.resolve(cwd, command);
      return (await isExecutableFile(file))
        ? { ok: true, detail: `${file} is executable` }
        : { ok: false, reason: `${file} is missing or not executable` };
    }
    for (const dir of pathDirs) {
      if (!dir) continue;
      const file = path.resolve(cwd, dir, command);
      if (await isExecutableFile(file)) return { ok: true, detail: `found ${file}` };
    }
    return { ok: false, reason: `command "${command}" not found as an executable on PATH (${pathDirs.length} folders searched)` };
  };
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    if (!(await stat(file)).isFile()) return false;
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Redis answers PING. A client that is not connected fails at once instead of queueing the PING
 * (ioredis' offline queue would otherwise hold it until the timeout).
 */
export function redisProbe(redis: Redis): ReadinessCheck['check'] {
  return async () => {
    if (redis.status !== 'ready') return { ok: false, reason: `redis connection is ${redis.status}` };
    try {
      const pong = await redis.ping();
      return pong === 'PONG' ? { ok: true } : { ok: false, reason: `redis answered ${JSON.stringify(pong)} to PING` };
    } catch (err) {
      return { ok: false, reason: `redis PING failed: ${(err as Error).message}` };
    }
  };
}

/**
 * Runs every check at once, each cut off after `timeoutMs` (a hung probe counts as failed, it never
 * holds up the answer). A check that throws fails with its error message.
 */
export async function runReadiness(checks: readonly ReadinessCheck[], timeoutMs: number): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (c) => {
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<CheckResult>((resolve) => {
        timer = setTimeout(() => resolve({ ok: false, reason: `check did not finish within ${timeoutMs}ms` }), timeoutMs);
      });
      let result: CheckResult;
      try {
        result = await Promise.race([c.check(), timeout]);
      } catch (err) {
        result = { ok: false, reason: (err as Error)?.message ?? String(err) };
      } finally {
        clearTimeout(timer);
      }
      const ok = result.ok === true;
      const degraded = ok ? result.degraded === true : c.degradesOnly === true;
      return {
        name: c.name,
        ok,
        ...(degraded && { degraded }),
        ...(result.reason !== undefined && { reason: result.reason }),
        ...(result.detail !== undefined && { detail: result.detail }),
        ms: Math.round(performance.now() - started),
      };
    }),
  );
  return { ready: results.every((r) => r.ok || r.degraded === true), checks: results };
}

/**
 * Ready while at least one member answers (a federation lists what its answering members have):
 * `2 of 3 members answering; degraded: graphs (timed out after 5000 ms)`.
 */
export function federationProbe(fed: Pick<Federation, 'status'>): ReadinessCheck['check'] {
  return async () => {
    const members = fed.status();
    const failing = members.filter((m) => !m.ok);
    const answering = members.length - failing.length;
    const summary = `${answering} of ${members.length} members answering`;
    if (failing.length === 0) return { ok: true, detail: summary };
    const text = `${summary}; degraded: ${failing.map((m) => (m.reason ? `${m.member} (${m.reason})` : m.member)).join(', ')}`;
    return answering > 0 ? { ok: true, degraded: true, detail: text } : { ok: false, reason: text };
  };
}

/**
 * Upstreams that serve only as federation members: named by a federation, by no route. Their failure
 * degrades their federations; the gateway stays ready (unless a federation has no member left).
 */
export function memberOnlyUpstreams(config: Pick<GatewayConfig, 'upstreams' | 'routes'>): Set<string> {
  const direct = new Set(config.routes.map((r) => r.upstream));
  const members = new Set<string>();
  for (const u of Object.values(config.upstreams)) {
    if ('federation' in u) for (const m of Object.keys(u.federation.members)) if (!direct.has(m)) members.add(m);
  }
  return members;
}

/** The checks of a running gateway: its runtime's upstreams as built, and Redis when connected. */
export function runtimeReadinessChecks(runtime: Pick<Runtime, 'upstreams' | 'loaded'>, redis: Redis | undefined, probeTimeoutMs = 2000): ReadinessCheck[] {
  const checks: ReadinessCheck[] = [];
  const memberOnly = memberOnlyUpstreams(runtime.loaded.config);
  for (const u of runtime.upstreams.values()) {
    const { stdio, federation } = u;
    const check = federation
      ? federationProbe(federation)
      : stdio
        ? async () => stdio.probe()
        : httpProbe(u.origin + (u.basePath || '/'), probeTimeoutMs, probeOptionsFor(u));
    checks.push({ name: `upstream:${u.name}`, ...(memberOnly.has(u.name) && { degradesOnly: true }), check });
  }
  if (redis) checks.push({ name: 'redis', check: redisProbe(redis) });
  return checks;
}

/**
 * The checks a config implies: one per upstream (`upstream:<name>`), and `redis` when Redis is
 * configured. `pathDirs` must be the folders the stdio spawner searches, in its order.
 */
export function readinessChecksFor(
  config: Pick<GatewayConfig, 'upstreams' | 'routes'>,
  opts: { configDir: string; pathDirs: readonly string[]; probeTimeoutMs: number; redis?: Redis },
): ReadinessCheck[] {
  const checks: ReadinessCheck[] = [];
  const memberOnly = memberOnlyUpstreams(config);
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    let check: ReadinessCheck['check'];
    if ('url' in upstream) {
      check = httpProbe(upstream.url, opts.probeTimeoutMs, { upstream: name, headers: upstream.headers, signsIdentity: upstream.identity !== undefined });
    } else if ('stdio' in upstream) {
      const cwd = upstream.stdio.cwd ? path.resolve(opts.configDir, upstream.stdio.cwd) : opts.configDir;
      check = commandProbe(upstream.stdio.command, opts.pathDirs, cwd);
    } else {
      // Without a running federation there is no member state to read; its members have their own checks.
      const count = Object.keys(upstream.federation.members).length;
      check = async () => ({ ok: true, detail: `a federation of ${count} members, each checked as its own upstream` });
    }
    checks.push({ name: `upstream:${name}`, ...(memberOnly.has(name) && { degradesOnly: true }), check });
  }
  if (opts.redis) checks.push({ name: 'redis', check: redisProbe(opts.redis) });
  return checks;
}

/**
 * Readiness probes behind `/readyz`: is each upstream reachable, is Redis answering.
 *
 * A probe answers "could a request succeed right now", never "is the upstream healthy": an HTTP
 * upstream that answers anything (even 401 or 405) is reachable; a stdio command that exists and is
 * executable is spawnable. Probes have no side effects: no MCP session is opened, no child is started,
 * no body is sent (the FalkorDB MCP server dies on one malformed POST).
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import type { Redis } from 'ioredis';
import type { GatewayConfig } from '../config/schema.ts';

export interface CheckResult {
  ok: boolean;
  /** Why it failed, in words an operator can act on; never contains a credential. */
  reason?: string;
  /** Extra information on success (e.g. the status an HTTP upstream answered). */
  detail?: string;
}

export interface ReadinessCheck {
  /** e.g. `upstream:falkordb`, `redis`, `config`. */
  name: string;
  check(): Promise<CheckResult>;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Array<{ name: string; ok: boolean; reason?: string; detail?: string; ms: number }>;
}

/**
 * Any HTTP answer means reachable. Sends `OPTIONS` without a body: nothing for an MCP server to parse,
 * no session opened. Not `HEAD`: Node servers never send the head of a HEAD response that only
 * `write()`s (an SSE endpoint), so the probe would time out on a healthy legacy upstream. The connection
 * is dropped as soon as a response head arrives, in case the endpoint streams anyway.
 */
export function httpProbe(url: string, timeoutMs: number): ReadinessCheck['check'] {
  const target = new URL(url);
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
      const req = send(target, { method: 'OPTIONS', agent: false, headers: { accept: 'application/json, text/event-stream' } });
      const timer = setTimeout(() => finish({ ok: false, reason: `${shown} did not answer within ${timeoutMs}ms` }), timeoutMs);
      req.on('response', (res) => {
        res.resume();
        finish({ ok: true, detail: `${shown} answered HTTP ${res.statusCode}` });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        finish({ ok: false, reason: `${shown} unreachable: ${err.code ?? err.message}` });
      });
      req.end();
    });
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
      return {
        name: c.name,
        ok: result.ok === true,
        ...(result.reason !== undefined && { reason: result.reason }),
        ...(result.detail !== undefined && { detail: result.detail }),
        ms: Math.round(performance.now() - started),
      };
    }),
  );
  return { ready: results.every((r) => r.ok), checks: results };
}

/**
 * The checks a config implies: one per upstream (`upstream:<name>`), and `redis` when Redis is
 * configured. `pathDirs` must be the folders the stdio spawner searches, in its order.
 */
export function readinessChecksFor(
  config: Pick<GatewayConfig, 'upstreams'>,
  opts: { configDir: string; pathDirs: readonly string[]; probeTimeoutMs: number; redis?: Redis },
): ReadinessCheck[] {
  const checks: ReadinessCheck[] = [];
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    if ('url' in upstream) {
      checks.push({ name: `upstream:${name}`, check: httpProbe(upstream.url, opts.probeTimeoutMs) });
    } else {
      const cwd = upstream.stdio.cwd ? path.resolve(opts.configDir, upstream.stdio.cwd) : opts.configDir;
      checks.push({ name: `upstream:${name}`, check: commandProbe(upstream.stdio.command, opts.pathDirs, cwd) });
    }
  }
  if (opts.redis) checks.push({ name: 'redis', check: redisProbe(opts.redis) });
  return checks;
}

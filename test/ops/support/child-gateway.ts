/**
 * The gateway as operators run it: `node gateway/main.ts --config FILE` in its own process, so tests can
 * send it real signals (SIGHUP, SIGTERM), watch it exit, and look at its child processes in /proc.
 *
 * Every process started here is remembered and killed by `stopAllChildGateways()`, which the test files
 * call in `after()`, so a failing assertion never leaves a gateway (or its stdio children) running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The Node 24 that runs TypeScript directly (the system node is too old). */
export const NODE_BIN = path.join(repoRoot, 'node_modules/.bin/node');
const MAIN = path.join(repoRoot, 'gateway/main.ts');

export interface ChildGateway {
  child: ChildProcess;
  pid: number;
  /** Every line the gateway wrote to stdout/stderr so far, parsed when it is JSON. */
  logs(): Array<Record<string, unknown>>;
  output(): string;
  /** Resolves when a log line satisfies `predicate`; rejects after `timeoutMs` with the output so far. */
  waitForLog(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number, what?: string): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildGateway>();

/** Starts the gateway and resolves once `port` accepts connections (the listener is up). */
export async function startChildGateway(configPath: string, opts: { port: number; env?: Record<string, string>; timeoutMs?: number }): Promise<ChildGateway> {
  const child = spawn(NODE_BIN, [MAIN, '--config', configPath], {
    cwd: repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, atMs: performance.now() }));
  });
  const logs = () =>
    out.split('\n').filter(Boolean).map((l) => {
      try { return JSON.parse(l) as Record<string, unknown>; } catch { return { raw: l }; }
    });
  const gw: ChildGateway = {
    child,
    pid: child.pid!,
    logs,
    output: () => out,
    exited,
    async waitForLog(predicate, timeoutMs = 10_000, what = 'a log line') {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = logs().find(predicate);
        if (found) return found;
        if (child.exitCode !== null || Date.now() > until) {
          throw new Error(`gateway child: no ${what} within ${timeoutMs}ms (exit ${child.exitCode}); output:\n${out}`);
        }
        await sleep(25);
      }
    },
    async stop(graceMs = 5000) {
      running.delete(gw);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.kill('SIGTERM');
      await exited;
      clearTimeout(kill);
    },
  };
  running.add(gw);
  try {
    await waitForPort(opts.port, opts.timeoutMs ?? 15_000, () => child.exitCode !== null);
  } catch (err) {
    await gw.stop(1000);
    throw new Error(`${(err as Error).message}; gateway output:\n${out}`);
  }
  return gw;
}

/** Kills every gateway child still running (use in `after()`). */
export async function stopAllChildGateways(): Promise<void> {
  await Promise.all([...running].map((g) => g.stop(2000)));
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await canConnect(port))) {
    if (gaveUp()) throw new Error(`the process exited before port ${port} opened`);
    if (Date.now() > until) throw new Error(`port ${port} did not open within ${timeoutMs}ms`);
    await sleep(50);
  }
}

/** True when a TCP connection to 127.0.0.1:port is accepted; false when refused. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => { sock.destroy(); resolve(false); });
  });
}

/** Pids of the live processes whose parent is `pid` (Linux /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const ppid = /^PPid:\s+(\d+)$/m.exec(status)?.[1];
      const state = /^State:\s+(\S)/m.exec(status)?.[1];
      // A zombie has exited already; it only waits for its parent to reap it.
      if (Number(ppid) === pid && state !== 'Z') out.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** True while a process with this pid exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^State:\s+(\S)/m.exec(status)?.[1] !== 'Z';
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Child processes of the benchmark and what the kernel says about them.
 *
 * Every server under test (upstream, comparison proxies, the gateway) runs in its own process so that
 * its CPU time can be read from /proc/<pid>/stat without counting the load generator, which shares the
 * machine. CPU time is user+sys of the whole thread group (worker threads, e.g. a pino transport,
 * included), so a proxy cannot hide work in a thread.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';

/** Clock ticks per second of /proc/<pid>/stat's utime/stime (almost always 100). */
const CLOCK_TICKS = readClockTicks();

function readClockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/** User+system CPU time a process has used so far, in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) is parenthesised and may contain spaces: split after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After comm, fields start at #3 (state); utime is #14 and stime #15 → indexes 11 and 12.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / CLOCK_TICKS;
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Samples a process's RSS every `intervalMs` until stopped; reports the largest value seen. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number } {
  let max = rssBytes(pid);
  const timer = setInterval(() => {
    try { max = Math.max(max, rssBytes(pid)); } catch { /* process gone: keep the last maximum */ }
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      try { max = Math.max(max, rssBytes(pid)); } catch { /* ignore */ }
      return max;
    },
  };
}

/** A port that was free a moment ago, for servers that need a concrete port in their config. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface BenchChild {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process wrote so far (for error messages). */
  output(): string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

/** Starts a process; its output is kept (bounded) for diagnostics. */
export function spawnChild(opts: SpawnOptions): BenchChild {
  const child = spawn(opts.command, opts.args, {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    // A chatty child must not grow the bench's memory: keep the tail only.
    if (out.length > 64_000) out = out.slice(-32_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('error', (err) => { out += `\n[spawn error] ${err.message}`; });
  return {
    name: opts.name,
    child,
    get pid() {
      if (child.pid === undefined) throw new Error(`${opts.name} did not start: ${out}`);
      return child.pid;
    },
    output: () => out,
    stop: () => stopChild(child),
  };
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  await new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => { clearTimeout(kill); resolve(); });
    child.kill('SIGTERM');
  });
}

/** Resolves with the first line of the child's stdout matching `pattern` (its capture group 1). */
export async function waitForLine(c: BenchChild, pattern: RegExp, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => fail(new Error(`${c.name} printed no ${pattern} within ${timeoutMs} ms:\n${c.output()}`)), timeoutMs);
    const onData = (b: Buffer) => {
      buf += b.toString();
      const m = pattern.exec(buf);
      if (m) { cleanup(); resolve(m[1] ?? m[0]); }
    };
    const onExit = (code: number | null) => fail(new Error(`${c.name} exited (${code}) before it was ready:\n${c.output()}`));
    const cleanup = () => {
      clearTimeout(timer);
      c.child.stdout!.off('data', onData);
      c.child.off('exit', onExit);
    };
    const fail = (err: Error) => { cleanup(); reject(err); };
    c.child.stdout!.on('data', onData);
    c.child.once('exit', onExit);
  });
}

/** Resolves once 127.0.0.1:`port` accepts connections; fails if the child exits first. */
export async function waitForPort(c: BenchChild, port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (c.child.exitCode !== null || c.child.signalCode !== null) {
      throw new Error(`${c.name} exited (${c.child.exitCode ?? c.child.signalCode}) before listening on ${port}:\n${c.output()}`);
    }
    const open = await new Promise<boolean>((resolve) => {
      const sock = createConnection({ host: '127.0.0.1', port });
      sock.once('connect', () => { sock.destroy(); resolve(true); });
      sock.once('error', () => { sock.destroy(); resolve(false); });
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${c.name} did not listen on ${port} within ${timeoutMs} ms:\n${c.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs `ready`; if it fails, stops the child first so a failed start never leaves a process behind. */
export async function readyOrStop<T>(c: BenchChild, ready: Promise<T>): Promise<T> {
  try {
    return await ready;
  } catch (err) {
    await c.stop();
    throw err;
  }
}

/**
 * The many-streams row: what one open, idle SSE stream costs a proxy in memory.
 *
 * The proxy runs in its own process with bench/mem-probe.ts preloaded (`--expose-gc --import`), so
 * its memory is read from inside after a full garbage collection, not guessed from a noisy RSS: a
 * reading is taken before the streams (after a warm-up that opened and closed a few, so lazily loaded
 * code and pools are not charged to the streams), with N streams open, and after they closed (what
 * the proxy failed to give back). Per-stream figures are the differences divided by N.
 *
 * The streams come from an upstream in idle mode (BENCH_SSE_INTERVAL_MS=0): one small event at once,
 * then silence. A stream counts as open when its response head AND that first event arrived, so it
 * is open end to end (client → proxy → upstream), not just accepted.
 *
 * N is bounded by what the machine allows: the proxy holds two sockets per stream (client side and
 * upstream side) and every connection takes an ephemeral port on 127.0.0.1, so N is lowered, with a
 * note, when the open-file limit or the port range cannot hold it.
 */
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { waitForLine, type BenchChild } from './processes.ts';

/** Never more than this many streams, whatever BENCH_MANY_STREAMS says. */
export const MAX_STREAMS = 20_000;

export interface MemSample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Whether the process could collect garbage before the reading (`--expose-gc`). */
  gc: boolean;
}

export interface ManyStreamsResult {
  requested: number;
  opened: number;
  failed: number;
  failures: Record<string, number>;
  /** Time to open all streams (in batches), ms. */
  openMs: number;
  before: MemSample;
  open: MemSample;
  /** `keptAfterMs` (3 s) after every stream closed. */
  closed: MemSample;
  /** (open − before) / opened, bytes. */
  rssPerStream: number;
  heapPerStream: number;
  /** Memory outside the V8 heap that Node accounts for (buffers), per stream. */
  externalPerStream: number;
  /** heapUsed still held `keptAfterMs` after the streams closed, per stream (a leak shows here). */
  heapRetainedPerStream: number;
}

/** The soft open-file limit of this process (children inherit it), or undefined if unreadable. */
export function openFileLimit(limitsText = readOr('/proc/self/limits')): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(limitsText);
  if (!m) return undefined;
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** How many local ports `connect()` may pick from (net.ipv4.ip_local_port_range), or undefined. */
export function ephemeralPorts(rangeText = readOr('/proc/sys/net/ipv4/ip_local_port_range')): number | undefined {
  const m = /^\s*(\d+)\s+(\d+)/.exec(rangeText);
  return m ? Number(m[2]) - Number(m[1]) + 1 : undefined;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * The number of streams to open: `wanted`, or less when the machine cannot hold it, with the reason.
 * The proxy needs 2 descriptors per stream plus a margin for its own files; the connections (client →
 * proxy, proxy → upstream) each take an ephemeral port, with a margin for connections that are still
 * in TIME_WAIT from earlier rows.
 */
export function streamBudget(wanted: number, fdLimit: number | undefined, ports: number | undefined): { streams: number; note?: string } {
  const caps: Array<[number, string]> = [[MAX_STREAMS, `the bench's own cap of ${MAX_STREAMS}`]];
  if (fdLimit !== undefined && Number.isFinite(fdLimit)) caps.push([Math.floor((fdLimit - 256) / 2), `the open-file limit (ulimit -n ${fdLimit}; the proxy holds 2 per stream)`]);
  if (ports !== undefined) caps.push([Math.floor((ports - 4096) / 2), `the ephemeral port range (${ports} ports; 2 connections per stream)`]);
  let streams = wanted;
  let note: string | undefined;
  for (const [cap, why] of caps) {
    if (cap < streams) {
      streams = Math.max(0, cap);
      note = `${wanted} streams asked for, ${streams} opened: limited by ${why}`;
    }
  }
  return { streams, note };
}

/** Asks a process started with bench/mem-probe.ts for its memory (after a full GC). */
export async function probeMemory(c: BenchChild, timeoutMs = 15_000): Promise<MemSample> {
  const line = waitForLine(c, /^bench-mem (\{.*\})$/m, timeoutMs);
  c.child.kill('SIGUSR2');
  return JSON.parse(await line) as MemSample;
}

interface OpenStream {
  req: ClientRequest;
  res?: IncomingMessage;
  failure?: string;
}

/** Opens one stream; resolves once its head and first event arrived, or it failed. */
function openOne(url: string, headers: Record<string, string>, agent: Agent, timeoutMs: number): Promise<OpenStream> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', agent, headers: { accept: 'text/event-stream', ...headers } });
    const done = (s: OpenStream) => { clearTimeout(timer); resolve(s); };
    const timer = setTimeout(() => {
      req.destroy();
      done({ req, failure: `no response head and first event within ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('response', (res) => {
      if (res.statusCode !== 200 || !String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        res.resume();
        done({ req, res, failure: `HTTP ${res.statusCode} ${res.headers['content-type'] ?? ''}`.trim() });
        return;
      }
      let seen = '';
      const onData = (c: Buffer) => {
        seen += c.toString('latin1');
        if (seen.includes('\n\n')) {
          res.off('data', onData);
          // Keep reading (heartbeats) so the proxy never sees a full socket buffer.
          res.resume();
          done({ req, res });
        }
      };
      res.on('data', onData);
      res.on('error', () => { /* closed by us at the end */ });
    });
    req.on('error', (err) => done({ req, failure: err.message }));
    req.end();
  });
}

async function openMany(url: string, headers: Record<string, string>, n: number, agent: Agent, timeoutMs: number): Promise<OpenStream[]> {
  // In batches, so the proxy's listen backlog is not what gets measured.
  const out: OpenStream[] = [];
  for (let i = 0; i < n; i += 100) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, () => openOne(url, headers, agent, timeoutMs)))));
  }
  return out;
}

function closeAll(streams: OpenStream[]): void {
  for (const s of streams) {
    s.res?.destroy();
    s.req.destroy();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runManyStreams(spec: {
  /** Stream URL (GET). */
  url: string;
  headers: Record<string, string>;
  /** The proxy, started with bench/mem-probe.ts preloaded. */
  child: BenchChild;
  streams: number;
  /** Per stream. Default 15 s. */
  openTimeoutMs?: number;
  /**
   * How long after closing the streams the last reading is taken. Default 3 s: long enough for
   * deferred clean-up to let go (the audit plugin, whose writes are batched with a 1 s flush interval,
   * holds each closed stream's memory for up to ~1.5 s), so what is still held is what a leak looks like.
   */
  keptAfterMs?: number;
}): Promise<ManyStreamsResult> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const timeoutMs = spec.openTimeoutMs ?? 15_000;
  let open: OpenStream[] = [];
  try {
    const warm = await openMany(spec.url, spec.headers, Math.min(50, spec.streams), agent, timeoutMs);
    closeAll(warm);
    const warmFailure = warm.find((s) => s.failure)?.failure;
    if (warmFailure) throw new Error(`warm-up streams failed: ${warmFailure}`);
    await sleep(500);
    const before = await probeMemory(spec.child);

    const t0 = performance.now();
    open = await openMany(spec.url, spec.headers, spec.streams, agent, timeoutMs);
    const openMs = performance.now() - t0;
    await sleep(500);
    const during = await probeMemory(spec.child);
    const opened = open.filter((s) => !s.failure).length;
    const failures: Record<string, number> = {};
    for (const s of open) if (s.failure) failures[s.failure] = (failures[s.failure] ?? 0) + 1;

    closeAll(open);
    open = [];
    await sleep(spec.keptAfterMs ?? 3000);
    const closed = await probeMemory(spec.child);
    const per = (a: number, b: number) => (opened > 0 ? (a - b) / opened : NaN);
    return {
      requested: spec.streams,
      opened,
      failed: spec.streams - opened,
      failures,
      openMs,
      before,
      open: during,
      closed,
      rssPerStream: per(during.rss, before.rss),
      heapPerStream: per(during.heapUsed, before.heapUsed),
      externalPerStream: per(during.external, before.external),
      heapRetainedPerStream: per(closed.heapUsed, before.heapUsed),
    };
  } finally {
    closeAll(open);
    agent.destroy();
  }
}

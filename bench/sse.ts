/**
 * N concurrent SSE streams through a proxy, and the delay each event takes to arrive.
 *
 * The upstream stamps every event with its send time (wall clock, sub-millisecond); this client stamps
 * its arrival. Both processes read the same host clock, so arrival − sentAt is the end-to-end relay
 * delay; the same measurement made direct (no proxy) gives the baseline, and the difference is what the
 * proxy adds. Events are spread evenly (each stream starts at a random phase), so the figure is the
 * relay delay under a steady event rate, not the time to drain a synchronized burst.
 */
import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createParser } from 'eventsource-parser';
import { percentile } from './load.ts';
import { cpuMicros, sampleRss } from './processes.ts';

export interface StreamSpec {
  /** Stream URL (GET). */
  url: string;
  headers?: Record<string, string>;
  streams: number;
  /** Seconds of measurement once every stream is open. */
  durationS: number;
  /** Seconds to wait after opening before measuring (lets every stream reach its first event). */
  settleS: number;
  /** Process whose CPU and RSS are measured. */
  pid: number;
  /** How long one stream may take to answer its head before it counts as failed. Default 10 s. */
  openTimeoutMs?: number;
}

export interface StreamResult {
  /** Streams that answered 200 text/event-stream. */
  opened: number;
  failed: number;
  /** Why streams failed to open, with counts, e.g. `{ "no response head within 10000 ms": 488 }`. */
  failures: Record<string, number>;
  /** Events measured (received during the measurement window). */
  events: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Largest RSS of `pid` while the streams were open, bytes. */
  peakRssBytes: number;
  /** CPU microseconds of `pid` per relayed event during the window. */
  cpuUsPerEvent: number;
}

const wallClockMs = () => performance.timeOrigin + performance.now();

interface OpenStream {
  req: ClientRequest;
  res?: IncomingMessage;
}

/** Opens one stream; resolves once its response head arrived (or it failed). */
function openStream(url: string, headers: Record<string, string>, agent: Agent, timeoutMs: number, onEvent: (delayMs: number) => void): Promise<OpenStream & { ok: boolean; failure?: string }> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', agent, headers: { accept: 'text/event-stream', ...headers } });
    // A proxy that queues the stream (e.g. a connection pool limit) must not hang the bench.
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ req, ok: false, failure: `no response head within ${timeoutMs} ms` });
    }, timeoutMs);
    req.on('response', (res) => {
      clearTimeout(timer);
      const ok = res.statusCode === 200 && String(res.headers['content-type'] ?? '').startsWith('text/event-stream');
      if (!ok) {
        res.resume();
        resolve({ req, res, ok: false, failure: `HTTP ${res.statusCode} ${res.headers['content-type'] ?? ''}`.trim() });
        return;
      }
      let arrivedAt = 0;
      const parser = createParser({
        onEvent(ev) {
          try {
            const sentAt = (JSON.parse(ev.data) as { params?: { data?: { sentAt?: number } } }).params?.data?.sentAt;
            if (typeof sentAt === 'number') onEvent(arrivedAt - sentAt);
          } catch {
            // A heartbeat or a foreign event: not a measurement.
          }
        },
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        arrivedAt = wallClockMs();
        parser.feed(chunk);
      });
      res.on('error', () => { /* closed by us at the end */ });
      resolve({ req, res, ok: true });
    });
    req.on('error', (err) => { clearTimeout(timer); resolve({ req, ok: false, failure: err.message }); });
    req.end();
  });
}

export async function runStreams(spec: StreamSpec): Promise<StreamResult> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  let measuring = false;
  const delays: number[] = [];
  const onEvent = (ms: number) => { if (measuring) delays.push(ms); };

  // Open in batches so the listen backlog of the proxy under test is not what we measure.
  const open: Array<OpenStream & { ok: boolean; failure?: string }> = [];
  const batch = 100;
  const rss = sampleRss(spec.pid, 200);
  try {
    for (let i = 0; i < spec.streams; i += batch) {
      const n = Math.min(batch, spec.streams - i);
      open.push(...(await Promise.all(Array.from({ length: n }, () => openStream(spec.url, spec.headers ?? {}, agent, spec.openTimeoutMs ?? 10_000, onEvent)))));
    }
    await new Promise((r) => setTimeout(r, spec.settleS * 1000));
    const cpuBefore = cpuMicros(spec.pid);
    measuring = true;
    await new Promise((r) => setTimeout(r, spec.durationS * 1000));
    measuring = false;
    const cpuAfter = cpuMicros(spec.pid);
    const sorted = Float64Array.from(delays).sort();
    const opened = open.filter((s) => s.ok).length;
    const failures: Record<string, number> = {};
    for (const s of open) if (s.failure) failures[s.failure] = (failures[s.failure] ?? 0) + 1;
    return {
      opened,
      failed: open.length - opened,
      failures,
      events: sorted.length,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
      peakRssBytes: rss.stop(),
      cpuUsPerEvent: sorted.length ? (cpuAfter - cpuBefore) / sorted.length : NaN,
    };
  } finally {
    rss.stop();
    for (const s of open) {
      s.res?.destroy();
      s.req.destroy();
    }
    agent.destroy();
  }
}

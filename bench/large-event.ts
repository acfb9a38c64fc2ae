/**
 * The large-event row: one very large SSE event (20 MB by default) relayed through a proxy, while a
 * stream of small requests goes through the same proxy at a steady rate.
 *
 * The upstream (bench/upstream.ts) answers a `tools/call` carrying `resultBytes: N` with ONE SSE event,
 * a single `data:` line of about N bytes holding the JSON-RPC response, then ends the response. A
 * gateway route with message hooks must frame the whole event, parse it, run the hooks and write it
 * back; a proxy that does this with quadratic buffering, or in one long synchronous step, shows up
 * here twice: in the time the event takes (against a proxy that only relays bytes), and in the
 * latency of the small requests that wait behind it on the same event loop.
 *
 * The large events start on a clock, one per `periodMs` (or right after the previous one when it took
 * longer): back to back they would keep the client, the upstream and the proxy busy on every core, and
 * the small requests would then measure a saturated machine rather than the proxy. The small requests
 * are sent on a clock too (open loop), each timed from its own send to its last byte; a closed loop
 * would send fewer requests exactly while the proxy stalls and so hide the stall. A proxy that blocks
 * its event loop for 100 ms per event delays ~10% of the requests of a 1 s period: the p99 sees it.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { percentile } from './load.ts';
import { cpuMicros, sampleRss } from './processes.ts';

export interface LargeEventSpec {
  /** The MCP endpoint (POST). */
  url: string;
  /** Headers of every request (content type, accept, credentials). */
  headers: Record<string, string>;
  /** Process whose CPU and RSS are measured (the proxy). */
  pid: number;
  /** Size of the one event's data, bytes (the upstream's `resultBytes`). */
  bytes: number;
  /** Fewest large events to relay. */
  repeats: number;
  /** One large event starts every `periodMs` (the next one at once if one takes longer). Default 1000. */
  periodMs?: number;
  /**
   * Shortest measured phase, ms: events keep coming until both `repeats` events and this long have
   * passed, so that the small requests beside them are enough for a p99 even when the events are fast
   * (direct, naive). Default 0.
   */
  minPhaseMs?: number;
  /** Small requests per second sent alongside. */
  smallRps: number;
  /** The graph name sent; the answer's text must start with `graph <it>: ` after any rewriting. */
  graphName: string;
  /** Longest wait for one large event. Default 120 s. */
  eventTimeoutMs?: number;
  /**
   * No new large event is started after this long (at least one always is), so a proxy that takes
   * seconds per event cannot make the bench take minutes. Default 15 s, never below minPhaseMs.
   */
  budgetMs?: number;
}

export interface LargeEventResult {
  /** Large events received complete and intact. */
  events: number;
  /** Why the others failed, with counts. */
  failures: Record<string, number>;
  /** Bytes of one relayed event's response body (as the client received it). */
  bytesPerEvent: number;
  /** Time from sending the request to the last byte of the event, ms. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** User+sys CPU of `pid` during the measured phase divided by the large events (small requests included). */
  cpuMsPerEvent: number;
  /** Largest RSS of `pid` during the measured phase. */
  peakRssBytes: number;
  small: SmallStreamResult;
}

export interface SmallStreamResult {
  sent: number;
  /** Answered 200 with the expected body. */
  ok: number;
  failed: number;
  failures: Record<string, number>;
  /**
   * Latency of every request sent, from send to last byte, ms. A request left without an answer
   * (timed out, connection lost) counts as 10 s, the timeout; one answered wrongly counts with its
   * time. Both also count as failed.
   */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const SMALL_TIMEOUT_MS = 10_000;

let nextId = 1;

function toolCall(graphName: string, resultBytes?: number): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: nextId++,
    method: 'tools/call',
    params: { name: 'query_graph', arguments: { graphName, query: 'MATCH (n) RETURN n', ...(resultBytes ? { resultBytes } : {}) } },
  });
}

interface Answer {
  status: number;
  contentType: string;
  bytes: number;
  /** The first bytes of the body (enough to check what it starts with). */
  head: string;
  /** The last two bytes of the body. */
  tail: string;
  ms: number;
}

/**
 * One POST; the body is counted, not kept (only its first 512 and last 2 bytes), so a 20 MB answer
 * costs the client almost nothing and does not disturb the small requests' timing.
 */
function post(url: string, headers: Record<string, string>, body: string, agent: Agent, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } });
    const timer = setTimeout(() => req.destroy(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('response', (res) => {
      let bytes = 0;
      let head = '';
      let tail = '';
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (head.length < 512) head += c.subarray(0, 512 - head.length).toString('latin1');
        tail = (tail + c.subarray(Math.max(0, c.length - 2)).toString('latin1')).slice(-2);
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), bytes, head, tail, ms: performance.now() - started });
      });
      res.on('error', (err) => { clearTimeout(timer); reject(err); });
    });
    req.on('error', (err) => { clearTimeout(timer); reject(err); });
    req.end(body);
  });
}

/** Why a large answer is not the event that was asked for, or undefined when it is. */
export function checkLargeAnswer(a: Answer, bytes: number, graphName: string): string | undefined {
  if (a.status !== 200) return `HTTP ${a.status}: ${a.head.slice(0, 160)}`;
  if (!a.contentType.startsWith('text/event-stream')) return `content-type ${a.contentType || 'none'}: ${a.head.slice(0, 160)}`;
  if (!a.head.includes(`graph ${graphName}: large result`)) return `unexpected event: ${a.head.slice(0, 160)}`;
  if (a.bytes < bytes) return `event cut short (${a.bytes} of at least ${bytes} bytes)`;
  if (a.tail !== '\n\n') return 'event not terminated by a blank line';
  return undefined;
}

const count = (m: Record<string, number>, why: string) => { m[why] = (m[why] ?? 0) + 1; };

/**
 * Small requests on a clock until stopped. Each is timed from its own send: a proxy that stalls its
 * event loop delays every request sent during the stall.
 */
function smallStream(url: string, headers: Record<string, string>, rps: number, graphName: string): { stop(): Promise<SmallStreamResult> } {
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  let ok = 0;
  const expected = `graph ${graphName}: 1 row`;
  const send = () => {
    sent++;
    const p = post(url, headers, toolCall(graphName), agent, SMALL_TIMEOUT_MS).then(
      (a) => {
        latencies.push(a.ms);
        if (a.status === 200 && a.head.includes(expected)) ok++;
        else count(failures, `HTTP ${a.status}: ${a.head.slice(0, 120)}`);
      },
      (err: Error) => {
        latencies.push(SMALL_TIMEOUT_MS);
        count(failures, err.message);
      },
    ).finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  // A timer per tick would drift and bunch up; catch up to the clock instead, so the rate holds even
  // when the client's own timers fire late.
  const periodMs = 1000 / rps;
  const start = performance.now();
  send();
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - start) / periodMs) + 1;
    while (sent < due) send();
  }, Math.max(1, Math.min(10, periodMs / 2)));
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      agent.destroy();
      const sorted = Float64Array.from(latencies).sort();
      const failed = Object.values(failures).reduce((a, b) => a + b, 0);
      return {
        sent, ok, failed, failures,
        p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99), maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
      };
    },
  };
}

export async function runLargeEvent(spec: LargeEventSpec): Promise<LargeEventResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const timeoutMs = spec.eventTimeoutMs ?? 120_000;
  const failures: Record<string, number> = {};
  const times: number[] = [];
  let bytesPerEvent = 0;
  try {
    // Warm-up, not measured: the upstream builds its rows once, the proxy's code gets compiled. A
    // failed warm-up is reported as it is: measuring a proxy that refuses the event means nothing.
    const warm = await post(spec.url, spec.headers, toolCall(spec.graphName, spec.bytes), agent, timeoutMs);
    const problem = checkLargeAnswer(warm, spec.bytes, spec.graphName);
    if (problem) {
      count(failures, `warm-up: ${problem}`);
      return { events: 0, failures, bytesPerEvent: warm.bytes, medianMs: NaN, minMs: NaN, maxMs: NaN, cpuMsPerEvent: NaN, peakRssBytes: 0, small: { sent: 0, ok: 0, failed: 0, failures: {}, p50Ms: NaN, p99Ms: NaN, maxMs: NaN } };
    }

    const rss = sampleRss(spec.pid, 50);
    const cpuBefore = cpuMicros(spec.pid);
    const small = smallStream(spec.url, spec.headers, spec.smallRps, spec.graphName);
    const started = performance.now();
    const minPhaseMs = spec.minPhaseMs ?? 0;
    const budgetMs = Math.max(spec.budgetMs ?? 15_000, minPhaseMs);
    const periodMs = spec.periodMs ?? 1000;
    for (let i = 0; i < spec.repeats || performance.now() - started < minPhaseMs; i++) {
      if (i > 0 && performance.now() - started > budgetMs) break;
      const wait = started + i * periodMs - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      try {
        const a = await post(spec.url, spec.headers, toolCall(spec.graphName, spec.bytes), agent, timeoutMs);
        const why = checkLargeAnswer(a, spec.bytes, spec.graphName);
        if (why) count(failures, why);
        else {
          times.push(a.ms);
          bytesPerEvent = a.bytes;
        }
      } catch (err) {
        count(failures, (err as Error).message);
      }
    }
    const smallResult = await small.stop();
    const cpuAfter = cpuMicros(spec.pid);
    const peakRssBytes = rss.stop();
    const sorted = Float64Array.from(times).sort();
    const attempts = times.length + Object.values(failures).reduce((a, b) => a + b, 0);
    return {
      events: times.length,
      failures,
      bytesPerEvent,
      medianMs: percentile(sorted, 0.5),
      minMs: sorted.length ? sorted[0] : NaN,
      maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
      cpuMsPerEvent: attempts > 0 ? (cpuAfter - cpuBefore) / 1000 / attempts : NaN,
      peakRssBytes,
      small: smallResult,
    };
  } finally {
    agent.destroy();
  }
}

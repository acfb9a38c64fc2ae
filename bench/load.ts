/**
 * Request/response load with autocannon (programmatic API) and the proxy's CPU time per request.
 *
 * One phase = a warm-up run whose numbers are thrown away (JIT, connection pools, caches such as the
 * jwt plugin's verified-token LRU), then the measured run. The proxy's user+sys CPU time is read from
 * /proc before and after the measured run and divided by the requests completed in it.
 */
import autocannon, { type Options, type Result } from 'autocannon';
import { cpuMicros, sampleRss } from './processes.ts';

export interface LoadSpec {
  url: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  /** Seconds. */
  durationS: number;
  /** Seconds; 0 skips the warm-up. */
  warmupS: number;
  /** Process whose CPU time and RSS are measured (the proxy, or the upstream for the direct row). */
  pid: number;
}

export interface LoadResult {
  /** Responses received in the measured run (any status). */
  responses: number;
  /** Responses with a 2xx status. */
  ok: number;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  reqPerSec: number;
  /** Latency percentiles in milliseconds (sub-millisecond precision, from autocannon's hrtime). */
  p50Ms: number;
  p99Ms: number;
  /** User+sys CPU microseconds of `pid` per response. */
  cpuUsPerReq: number;
  /** Largest RSS of `pid` during the measured run, bytes. */
  peakRssBytes: number;
}

function run(opts: Options, onResponse?: (status: number, ms: number) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(opts, (err, result) => (err ? reject(err) : resolve(result)));
    if (onResponse) instance.on('response', (_client, status, _bytes, ms) => onResponse(status, ms));
  });
}

/** The value below which `q` (0..1) of the sorted samples fall (nearest rank). */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const base: Options = {
    url: spec.url,
    method: 'POST',
    headers: spec.headers,
    body: spec.body,
    connections: spec.connections,
    pipelining: 1,
    timeout: 10,
  };
  if (spec.warmupS > 0) await run({ ...base, duration: spec.warmupS });

  const latencies: number[] = [];
  let ok = 0;
  let non2xx = 0;
  const rss = sampleRss(spec.pid);
  const cpuBefore = cpuMicros(spec.pid);
  const result = await run({ ...base, duration: spec.durationS }, (status, ms) => {
    latencies.push(ms);
    if (status >= 200 && status < 300) ok++;
    else non2xx++;
  });
  const cpuAfter = cpuMicros(spec.pid);
  const peakRssBytes = rss.stop();

  const sorted = Float64Array.from(latencies).sort();
  const responses = latencies.length;
  return {
    responses,
    ok,
    non2xx,
    errors: result.errors + result.timeouts,
    reqPerSec: responses / Math.max(result.duration, 1e-9),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    cpuUsPerReq: responses > 0 ? (cpuAfter - cpuBefore) / responses : NaN,
    peakRssBytes,
  };
}

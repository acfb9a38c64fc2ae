/**
 * Benchmark settings, from the environment. Defaults make a full run take a few minutes on two cores;
 * BENCH_QUICK=1 shrinks everything for the smoke test (well under a minute).
 */

export interface BenchOptions {
  quick: boolean;
  /** Measured seconds per request/response row. BENCH_DURATION, default 5 (quick: 1). */
  durationS: number;
  /** Warm-up seconds before each measured row, numbers discarded. BENCH_WARMUP, default 1 (quick: 0.5). */
  warmupS: number;
  /** Concurrent autocannon connections. BENCH_CONNECTIONS, default 32 (quick: 8). */
  connections: number;
  /** Concurrent SSE streams. BENCH_STREAMS, default 1000 (quick: 50). */
  streams: number;
  /** Seconds of SSE measurement once all streams are open. BENCH_STREAM_DURATION, default 5 (quick: 1). */
  streamDurationS: number;
  /** Milliseconds between two events of one stream. BENCH_SSE_INTERVAL_MS, default 1000 (quick: 200). */
  streamIntervalMs: number;
  /**
   * Times every row is measured, in interleaved rounds (row order rotates), reporting the median of
   * each figure. Interleaving spreads the machine's noise over all rows. BENCH_ROUNDS, default 2
   * (quick: 1).
   */
  rounds: number;
  /** Comma-separated row ids to run (e.g. `direct,naive,gateway`); empty runs all. BENCH_ONLY. */
  only: Set<string>;
  /** Where the JSON results go. BENCH_OUT, default a file in a fresh temp folder. */
  out?: string;
}

function num(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`${name} must be a number ≥ ${min}; got ${JSON.stringify(raw)}`);
  return n;
}

export function readOptions(): BenchOptions {
  const quick = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';
  return {
    quick,
    durationS: num('BENCH_DURATION', quick ? 1 : 5, 0.2),
    warmupS: num('BENCH_WARMUP', quick ? 0.5 : 1, 0),
    connections: Math.round(num('BENCH_CONNECTIONS', quick ? 8 : 32, 1)),
    streams: Math.round(num('BENCH_STREAMS', quick ? 50 : 1000, 0)),
    streamDurationS: num('BENCH_STREAM_DURATION', quick ? 1 : 5, 0.2),
    streamIntervalMs: num('BENCH_SSE_INTERVAL_MS', quick ? 200 : 1000, 1),
    rounds: Math.round(num('BENCH_ROUNDS', quick ? 1 : 2, 1)),
    only: new Set((process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean)),
    out: process.env.BENCH_OUT || undefined,
  };
}

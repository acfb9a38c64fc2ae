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
  /**
   * Size of the one SSE event of the large-event row, bytes. BENCH_LARGE_EVENT_BYTES, default 20000000
   * (quick: 1000000); 0 skips the row.
   */
  largeEventBytes: number;
  /**
   * Fewest large events relayed per target; they keep coming until BENCH_DURATION seconds have passed
   * too (so the small requests beside them are many enough for a p99), and no new one starts after
   * 60 s. BENCH_LARGE_EVENT_REPEATS, default 5 (quick: 2).
   */
  largeEventRepeats: number;
  /**
   * One large event starts every this many milliseconds (the next at once when one takes longer).
   * BENCH_LARGE_EVENT_PERIOD_MS, default 1000 (quick: 250).
   */
  largeEventPeriodMs: number;
  /**
   * Rate of the small tools/call requests sent alongside the large events (open loop: sent on a clock,
   * not after the previous answer, so a stalled proxy cannot slow the stream down and hide its stall).
   * BENCH_SMALL_RPS, default 100 (quick: 50).
   */
  smallRps: number;
  /**
   * Idle SSE streams held open at once by the many-streams row. BENCH_MANY_STREAMS, default 2000
   * (quick: 100); 0 skips the row. Lowered, with a note, when the open-file limit or the ephemeral
   * port range cannot hold that many (see bench/many-streams.ts).
   */
  manyStreams: number;
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
    largeEventBytes: Math.round(num('BENCH_LARGE_EVENT_BYTES', quick ? 1_000_000 : 20_000_000, 0)),
    largeEventRepeats: Math.round(num('BENCH_LARGE_EVENT_REPEATS', quick ? 2 : 5, 1)),
    largeEventPeriodMs: num('BENCH_LARGE_EVENT_PERIOD_MS', quick ? 250 : 1000, 0),
    smallRps: num('BENCH_SMALL_RPS', quick ? 50 : 100, 1),
    manyStreams: Math.round(num('BENCH_MANY_STREAMS', quick ? 100 : 2000, 0)),
  };
}

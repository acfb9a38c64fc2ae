/**
 * Turns measurements into the printed tables, the target verdicts and the JSON document.
 *
 * Every target is a ratio against a baseline measured in the same run (the machine is small and
 * noisy; absolute numbers from different runs are not comparable, ratios mostly are).
 */
import type { LoadResult } from './load.ts';
import type { StreamResult } from './sse.ts';

export interface RowOutcome {
  id: string;
  label: string;
  /** Median over rounds; undefined when the row was skipped or failed. */
  load?: LoadResult;
  /** Why the row has no numbers, or a remark about them. */
  note?: string;
}

export interface StreamOutcome {
  id: string;
  label: string;
  result?: StreamResult;
  note?: string;
}

export interface MemoryOutcome {
  idleRssBytes?: number;
  /** The naive proxy's idle RSS: what a Node process with an HTTP proxy costs before any gateway code. */
  naiveIdleRssBytes?: number;
  loadRssBytes?: number;
  streamsRssBytes?: number;
  note?: string;
}

export interface TargetVerdict {
  /** What is compared, e.g. "gateway CPU/req vs naive". */
  what: string;
  actual: number;
  limit: number;
  /** `max`: actual must be ≤ limit; `min`: ≥ limit. */
  kind: 'max' | 'min';
  unit: 'x' | 'ms' | 'MB';
  pass: boolean;
}

/** Median of each numeric field over several rounds of the same row. */
export function medianLoad(results: LoadResult[]): LoadResult {
  const med = (pick: (r: LoadResult) => number) => {
    const v = results.map(pick).sort((a, b) => a - b);
    const mid = Math.floor(v.length / 2);
    return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  };
  return {
    responses: med((r) => r.responses),
    ok: med((r) => r.ok),
    non2xx: Math.max(...results.map((r) => r.non2xx)),
    errors: Math.max(...results.map((r) => r.errors)),
    reqPerSec: med((r) => r.reqPerSec),
    p50Ms: med((r) => r.p50Ms),
    p99Ms: med((r) => r.p99Ms),
    cpuUsPerReq: med((r) => r.cpuUsPerReq),
    peakRssBytes: Math.max(...results.map((r) => r.peakRssBytes)),
  };
}

/** The targets from the issues, evaluated on whatever rows have numbers. */
export function evaluateTargets(rows: RowOutcome[], streams: StreamOutcome[], memory: MemoryOutcome): TargetVerdict[] {
  const get = (id: string) => rows.find((r) => r.id === id)?.load;
  const out: TargetVerdict[] = [];
  const ratio = (what: string, a: number, b: number, limit: number, kind: 'max' | 'min') => {
    const actual = a / b;
    out.push({ what, actual, limit, kind, unit: 'x', pass: kind === 'max' ? actual <= limit : actual >= limit });
  };
  const naive = get('naive');
  const gw = get('gateway');
  if (naive && gw) {
    ratio('gateway (no plugins) req/s vs naive proxy', gw.reqPerSec, naive.reqPerSec, 0.9, 'min');
    ratio('gateway (no plugins) CPU/req vs naive proxy', gw.cpuUsPerReq, naive.cpuUsPerReq, 1.1, 'max');
  }
  const audit = get('gateway-audit');
  if (naive && audit) ratio('gateway + audit CPU/req vs naive proxy', audit.cpuUsPerReq, naive.cpuUsPerReq, 1.2, 'max');
  const auth = get('gateway-auth');
  if (gw && auth) ratio('gateway + token+jwt CPU/req vs no-auth route', auth.cpuUsPerReq, gw.cpuUsPerReq, 1.05, 'max');
  const full = get('gateway-full');
  if (gw && full) ratio('gateway full pipeline CPU/req vs no-plugin route', full.cpuUsPerReq, gw.cpuUsPerReq, 1.3, 'max');

  const direct = streams.find((s) => s.id === 'direct')?.result;
  const gwStreams = streams.find((s) => s.id === 'gateway')?.result;
  if (direct && gwStreams) {
    // Streams the gateway failed to open are a miss whatever the delay of the others.
    const added = gwStreams.p99Ms - direct.p99Ms;
    const all = gwStreams.failed === 0;
    out.push({
      what: `gateway SSE relay delay p99 added vs direct (${gwStreams.opened} streams${all ? '' : `, ${gwStreams.failed} FAILED to open`})`,
      actual: added, limit: 2, kind: 'max', unit: 'ms', pass: all && added <= 2,
    });
  }
  if (memory.idleRssBytes !== undefined) {
    const mb = memory.idleRssBytes / 1e6;
    out.push({ what: 'gateway idle RSS', actual: mb, limit: 60, kind: 'max', unit: 'MB', pass: mb <= 60 });
  }
  return out;
}

const fmt = (n: number | undefined, digits = 0) =>
  n === undefined || !Number.isFinite(n) ? '—' : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mb = (bytes: number | undefined) => (bytes === undefined ? '—' : `${fmt(bytes / 1e6, 1)} MB`);

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(headers: string[], body: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function renderReport(input: {
  header: string[];
  rows: RowOutcome[];
  streams: StreamOutcome[];
  memory: MemoryOutcome;
  targets: TargetVerdict[];
}): string {
  const naive = input.rows.find((r) => r.id === 'naive')?.load;
  const gw = input.rows.find((r) => r.id === 'gateway')?.load;
  const out: string[] = [...input.header, ''];

  out.push('Request/response (POST tools/call, application/json answer). CPU = the proxy process (direct: the upstream).');
  out.push(table(
    ['row', 'req/s', '×naive', 'p50 ms', 'p99 ms', 'CPU µs/req', '×naive', '×gateway', 'peak RSS', 'errors'],
    input.rows.filter((r) => r.load).map((r) => {
      const l = r.load!;
      return [
        r.label,
        fmt(l.reqPerSec),
        naive ? fmt(l.reqPerSec / naive.reqPerSec, 2) : '—',
        fmt(l.p50Ms, 2),
        fmt(l.p99Ms, 2),
        fmt(l.cpuUsPerReq, 1),
        naive ? fmt(l.cpuUsPerReq / naive.cpuUsPerReq, 2) : '—',
        gw ? fmt(l.cpuUsPerReq / gw.cpuUsPerReq, 2) : '—',
        mb(l.peakRssBytes),
        l.non2xx + l.errors > 0 ? `${l.non2xx} non-2xx, ${l.errors} errors` : '0',
      ];
    }),
  ));
  for (const r of input.rows) {
    if (!r.load) out.push(`  skipped ${r.label}: ${r.note ?? 'no result'}`);
    else if (r.note) out.push(`  note (${r.label}): ${r.note}`);
  }
  out.push('');

  const direct = input.streams.find((s) => s.id === 'direct')?.result;
  out.push('SSE streams: per-event relay delay (upstream send stamp → client arrival).');
  if (input.streams.length === 0) out.push('  not run (BENCH_STREAMS=0 or no target answered)');
  else out.push(table(
    ['row', 'streams', 'events', 'p50 ms', 'p99 ms', 'max ms', '+p50 vs direct', '+p99 vs direct', 'CPU µs/event', 'peak RSS'],
    input.streams.filter((s) => s.result).map((s) => {
      const r = s.result!;
      return [
        s.label,
        r.failed ? `${r.opened} (+${r.failed} failed)` : String(r.opened),
        fmt(r.events),
        fmt(r.p50Ms, 2),
        fmt(r.p99Ms, 2),
        fmt(r.maxMs, 2),
        direct && s.id !== 'direct' ? fmt(r.p50Ms - direct.p50Ms, 2) : '—',
        direct && s.id !== 'direct' ? fmt(r.p99Ms - direct.p99Ms, 2) : '—',
        fmt(r.cpuUsPerEvent, 1),
        mb(r.peakRssBytes),
      ];
    }),
  ));
  for (const s of input.streams) {
    if (!s.result) out.push(`  skipped ${s.label}: ${s.note ?? 'no result'}`);
    else if (s.result.failed > 0) out.push(`  ${s.label}: ${s.result.failed} streams failed to open: ${Object.entries(s.result.failures).map(([why, n]) => `${n}× ${why}`).join(', ')}`);
  }
  out.push('');

  out.push(`Gateway RSS: idle ${mb(input.memory.idleRssBytes)}, under request load ${mb(input.memory.loadRssBytes)}, ` +
    `with the SSE streams open ${mb(input.memory.streamsRssBytes)}${input.memory.note ? ` (${input.memory.note})` : ''}`);
  if (input.memory.naiveIdleRssBytes !== undefined) out.push(`Naive proxy idle RSS (the Node floor): ${mb(input.memory.naiveIdleRssBytes)}`);
  out.push('');

  out.push('Targets (ratios against baselines measured in this run):');
  if (input.targets.length === 0) out.push('  none evaluated (the rows they compare were skipped)');
  for (const t of input.targets) {
    const unit = t.unit === 'x' ? '×' : ` ${t.unit}`;
    const digits = t.unit === 'x' ? 2 : 1;
    out.push(`  ${t.pass ? 'PASS' : 'MISS'}  ${t.what}: ${fmt(t.actual, digits)}${unit} (target ${t.kind === 'max' ? '≤' : '≥'} ${t.limit}${unit})`);
  }
  return out.join('\n');
}

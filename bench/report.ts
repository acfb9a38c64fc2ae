/**
 * Turns measurements into the printed tables, the target verdicts and the JSON document.
 *
 * Every target is a ratio against a baseline measured in the same run (the machine is small and
 * noisy; absolute numbers from different runs are not comparable, ratios mostly are).
 */
import type { LoadResult } from './load.ts';
import type { StreamResult } from './sse.ts';
import type { LargeEventResult } from './large-event.ts';
import type { ManyStreamsResult } from './many-streams.ts';

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

/** One target of the large-event row (direct, naive, a gateway configuration). */
export interface LargeEventOutcome {
  id: string;
  label: string;
  /** Whether the route runs message hooks on the event: the targets apply to this row. */
  hooks?: boolean;
  result?: LargeEventResult;
  note?: string;
}

/** One target of the many-streams row. */
export interface ManyStreamsOutcome {
  id: string;
  label: string;
  /** Whether this is a gateway row (the per-stream target applies to it; the naive proxy is a reference). */
  gateway?: boolean;
  result?: ManyStreamsResult;
  note?: string;
}

/** The rows measured outside the request/response table. */
export interface SectionOutcomes {
  largeEvents?: LargeEventOutcome[];
  /** Settings of the large-event row, for the heading. */
  largeEvent?: { bytes: number; repeats: number; periodMs: number; minPhaseS: number; smallRps: number };
  manyStreams?: ManyStreamsOutcome[];
  /** Why fewer streams than asked were opened, or why the row did not run. */
  manyStreamsNote?: string;
}

/** Baseline of the large-event target: the naive proxy (see docs/benchmarks.md for why not direct). */
export const LARGE_EVENT_BASELINE = 'naive';
/** Limits of the targets that are not ratios of request rows. */
export const LIMITS = {
  largeEventVsBaseline: 2,
  largeEventSmallP99Ms: 50,
  bytesPerStream: 20_000,
};

export interface TargetVerdict {
  /** What is compared, e.g. "gateway CPU/req vs naive". */
  what: string;
  actual: number;
  limit: number;
  /** `max`: actual must be ≤ limit; `min`: ≥ limit. */
  kind: 'max' | 'min';
  unit: 'x' | 'ms' | 'MB' | 'KB';
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
export function evaluateTargets(rows: RowOutcome[], streams: StreamOutcome[], memory: MemoryOutcome, sections: SectionOutcomes = {}): TargetVerdict[] {
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
  if (gw && audit) ratio('gateway + audit CPU/req vs no-plugin route', audit.cpuUsPerReq, gw.cpuUsPerReq, 1.15, 'max');
  const auth = get('gateway-auth');
  if (gw && auth) ratio('gateway + token+jwt CPU/req vs no-auth route', auth.cpuUsPerReq, gw.cpuUsPerReq, 1.05, 'max');
  const full = get('gateway-full');
  if (gw && full) ratio('gateway full pipeline CPU/req vs no-plugin route', full.cpuUsPerReq, gw.cpuUsPerReq, 1.3, 'max');
  const federation = get('federation');
  if (gw && federation) ratio('federation (one member) CPU/req vs no-plugin route', federation.cpuUsPerReq, gw.cpuUsPerReq, 1.5, 'max');

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

  // Large event: the hooked route against the baseline's relay time, and the small requests beside it.
  // Events or small requests that failed are a miss whatever the figures of the others.
  const large = sections.largeEvents ?? [];
  const base = large.find((l) => l.id === LARGE_EVENT_BASELINE)?.result;
  for (const l of large.filter((x) => x.hooks && x.result)) {
    const r = l.result!;
    const failed = Object.values(r.failures).reduce((a, b) => a + b, 0);
    const broken = failed > 0 ? `, ${failed} event(s) FAILED` : '';
    if (base && base.events > 0) {
      const actual = r.medianMs / base.medianMs;
      out.push({
        what: `${l.label}: ${mb(r.bytesPerEvent || undefined)} SSE event relay time vs naive proxy (${fmt(r.medianMs, 0)} vs ${fmt(base.medianMs, 0)} ms${broken})`,
        actual, limit: LIMITS.largeEventVsBaseline, kind: 'max', unit: 'x', pass: failed === 0 && actual <= LIMITS.largeEventVsBaseline,
      });
    }
    const smallBroken = r.small.failed > 0 ? `, ${r.small.failed} FAILED` : '';
    const floor = base && base.small.sent > 0 ? `; naive proxy ${fmt(base.small.p99Ms, 1)} ms` : '';
    out.push({
      what: `${l.label}: small requests p99 during the large events (${r.small.sent} requests${smallBroken}${floor}; the target is < 50 ms)`,
      actual: r.small.p99Ms, limit: LIMITS.largeEventSmallP99Ms, kind: 'max', unit: 'ms',
      pass: r.small.failed === 0 && r.small.ok > 0 && r.small.p99Ms < LIMITS.largeEventSmallP99Ms,
    });
  }

  // Memory per idle stream, on every gateway row of the many-streams section: RSS, what the machine
  // pays. The naive proxy's figure (the Node floor) and the heap share are printed beside it.
  const naiveStreams = (sections.manyStreams ?? []).find((x) => x.id === 'naive')?.result;
  for (const m of (sections.manyStreams ?? []).filter((x) => x.gateway && x.result)) {
    const r = m.result!;
    const broken = r.failed > 0 ? `, ${r.failed} FAILED to open` : '';
    const kb = r.rssPerStream / 1000;
    const floor = naiveStreams ? `; naive proxy ${fmt(naiveStreams.rssPerStream / 1000, 1)} KB` : '';
    out.push({
      what: `${m.label}: RSS per open idle SSE stream (${r.opened} streams${broken}; V8 heap ${fmt(r.heapPerStream / 1000, 1)} KB of it${floor})`,
      actual: kb, limit: LIMITS.bytesPerStream / 1000, kind: 'max', unit: 'KB', pass: r.failed === 0 && kb <= LIMITS.bytesPerStream / 1000,
    });
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
  sections?: SectionOutcomes;
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

  const sections = input.sections ?? {};
  if (sections.largeEvents) {
    out.push(...renderLargeEvents(sections.largeEvents, sections.largeEvent));
    out.push('');
  }
  if (sections.manyStreams) {
    out.push(...renderManyStreams(sections.manyStreams, sections.manyStreamsNote));
    out.push('');
  }

  out.push('Targets (ratios against baselines measured in this run):');
  if (input.targets.length === 0) out.push('  none evaluated (the rows they compare were skipped)');
  for (const t of input.targets) {
    const unit = t.unit === 'x' ? '×' : ` ${t.unit}`;
    const digits = t.unit === 'x' ? 2 : 1;
    out.push(`  ${t.pass ? 'PASS' : 'MISS'}  ${t.what}: ${fmt(t.actual, digits)}${unit} (target ${t.kind === 'max' ? '≤' : '≥'} ${t.limit}${unit})`);
  }
  return out.join('\n');
}

const failureList = (f: Record<string, number>) => Object.entries(f).map(([why, n]) => `${n}× ${why}`).join(', ');

function renderLargeEvents(large: LargeEventOutcome[], settings: SectionOutcomes['largeEvent']): string[] {
  const base = large.find((l) => l.id === LARGE_EVENT_BASELINE)?.result;
  const out: string[] = [];
  out.push(settings
    ? `Large SSE event: one ${mb(settings.bytes)} data: line (a JSON-RPC response) per POST, one every ${settings.periodMs} ms or back to back when slower (at least ${settings.repeats} and ${settings.minPhaseS} s), ` +
      `with ${settings.smallRps} small tools/call req/s alongside (open loop). Time = request sent → last byte of the event; ` +
      'CPU = the proxy during the phase, small requests included (direct: the upstream).'
    : 'Large SSE event:');
  out.push(table(
    ['row', 'events', 'median ms', 'min ms', 'max ms', '×naive', 'CPU ms/event', 'peak RSS', 'small p50 ms', 'small p99 ms', 'small max ms', 'small failed'],
    large.filter((l) => l.result && l.result.events > 0).map((l) => {
      const r = l.result!;
      return [
        l.label,
        String(r.events),
        fmt(r.medianMs, 1),
        fmt(r.minMs, 1),
        fmt(r.maxMs, 1),
        base ? fmt(r.medianMs / base.medianMs, 2) : '—',
        fmt(r.cpuMsPerEvent, 1),
        mb(r.peakRssBytes),
        fmt(r.small.p50Ms, 2),
        fmt(r.small.p99Ms, 2),
        fmt(r.small.maxMs, 1),
        `${r.small.failed} of ${r.small.sent}`,
      ];
    }),
  ));
  for (const l of large) {
    if (!l.result) out.push(`  skipped ${l.label}: ${l.note ?? 'no result'}`);
    else {
      if (Object.keys(l.result.failures).length > 0) out.push(`  ${l.label}: large events failed: ${failureList(l.result.failures)}`);
      if (l.result.small.failed > 0) out.push(`  ${l.label}: small requests failed: ${failureList(l.result.small.failures)}`);
    }
  }
  return out;
}

function renderManyStreams(many: ManyStreamsOutcome[], note: string | undefined): string[] {
  const kb = (bytes: number) => fmt(bytes / 1000, 1);
  const out: string[] = [];
  out.push('Idle SSE streams held open at once: memory of the proxy process, read from inside after a full GC ' +
    '(RSS and V8 heap; per stream = (open − before) / streams; "kept" = heap still held 3 s after they closed, 1 s with BENCH_QUICK). KB = 1,000 bytes.');
  if (note) out.push(`  ${note}`);
  out.push(table(
    ['row', 'streams', 'open s', 'RSS before', 'RSS open', 'RSS KB/stream', 'heap KB/stream', 'external KB/stream', 'kept KB/stream'],
    many.filter((m) => m.result).map((m) => {
      const r = m.result!;
      return [
        m.label,
        r.failed ? `${r.opened} (+${r.failed} failed)` : String(r.opened),
        fmt(r.openMs / 1000, 1),
        mb(r.before.rss),
        mb(r.open.rss),
        kb(r.rssPerStream),
        kb(r.heapPerStream),
        kb(r.externalPerStream),
        kb(r.heapRetainedPerStream),
      ];
    }),
  ));
  for (const m of many) {
    if (!m.result) out.push(`  skipped ${m.label}: ${m.note ?? 'no result'}`);
    else if (m.result.failed > 0) out.push(`  ${m.label}: ${m.result.failed} streams failed to open: ${failureList(m.result.failures)}`);
  }
  return out;
}

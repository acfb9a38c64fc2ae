/**
 * `npm run bench`: the gateway against a direct connection and comparison proxies, in one run.
 *
 * Starts the purpose-built upstream, a naive http-proxy-3 proxy (the Node floor), nginx when
 * installed, one gateway process per plugin configuration and one with a federation (bench/federation.ts),
 * each in its own process. Then, for every row: a warm-up, a measured autocannon run of MCP `tools/call`
 * POSTs, and the proxy's CPU time per request from /proc. Then N concurrent SSE streams per proxy with
 * per-event relay delay, and the gateway's RSS idle, under load and with the streams open. Then two
 * rows with processes of their own: one large SSE event through a hooked route with small requests
 * alongside (bench/large-event.ts), and memory per idle SSE stream with thousands open
 * (bench/many-streams.ts). Prints tables of ratios and the targets, and writes the JSON results
 * (BENCH_OUT, or a temp file). See docs/benchmarks.md.
 */
import { cpus, tmpdir, totalmem, type as osType, release } from 'node:os';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runLoad, type LoadResult } from './load.ts';
import { runStreams } from './sse.ts';
import { readOptions, type BenchOptions } from './options.ts';
import type { StdioMuxResult } from './stdio-mux.ts';
import { benchSeal } from './seal.ts';
import { readyOrStop, rssBytes, spawnChild, waitForLine, type BenchChild } from './processes.ts';
import { runLargeEvent } from './large-event.ts';
import { ephemeralPorts, openFileLimit, runManyStreams, streamBudget } from './many-streams.ts';
import { findNginx, startNginx } from './nginx.ts';
import { FEDERATION_ROW, startFederationRow } from './federation.ts';
import {
  GATEWAY_VARIANTS, gatewayAvailable, mintCredentials, registeredPluginTypes, startGatewayChild,
  type BenchCredentials, type GatewayVariant,
} from './gateway-rows.ts';
import {
  evaluateTargets, medianLoad, renderReport,
  type LargeEventOutcome, type ManyStreamsOutcome, type MemoryOutcome, type RowOutcome, type SectionOutcomes, type StreamOutcome,
} from './report.ts';

const benchDir = path.dirname(fileURLToPath(import.meta.url));

/** One thing requests are sent to: the upstream itself, or a proxy in front of it. */
interface Target {
  id: string;
  label: string;
  /** The MCP endpoint URL. */
  url: string;
  /** The process whose CPU and RSS are measured. */
  pid: number;
  headers: Record<string, string>;
  /** The request body when not TOOL_CALL (the federation row's tool has a prefixed name). */
  body?: string;
  /** The process's output so far, to explain a failed probe. */
  output?: () => string;
}

/** The MCP request every row sends: a FalkorDB-style tool call, so graph-rewrite has work to do. */
const TOOL_CALL = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'query_graph', arguments: { graphName: 'social', query: 'MATCH (n) RETURN count(n)' } },
});

const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
};

const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

/** One request before measuring: a row that answers wrongly is reported, not measured. */
async function probe(t: Target): Promise<string | undefined> {
  try {
    const res = await fetch(t.url, { method: 'POST', headers: { ...MCP_HEADERS, ...t.headers }, body: t.body ?? TOOL_CALL });
    const text = await res.text();
    if (res.status !== 200) return `probe answered HTTP ${res.status}: ${text.slice(0, 200)}`;
    const body = JSON.parse(text) as { result?: { content?: Array<{ text?: string }> } };
    const echoed = body.result?.content?.[0]?.text;
    if (echoed !== 'graph social: 1 row') return `probe answered an unexpected body: ${text.slice(0, 200)}`;
    return undefined;
  } catch (err) {
    return `probe failed: ${(err as Error).message}`;
  }
}

/** The upstream; `intervalMs` 0 makes its SSE streams idle (the many-streams row). */
async function startUpstream(intervalMs: number, name = 'upstream'): Promise<{ child: BenchChild; url: string }> {
  const child = spawnChild({
    name,
    command: process.execPath,
    args: [path.join(benchDir, 'upstream.ts')],
    env: { BENCH_SSE_INTERVAL_MS: String(intervalMs) },
  });
  const port = await readyOrStop(child, waitForLine(child, /listening (\d+)/));
  return { child, url: `http://127.0.0.1:${port}` };
}

async function startNaive(upstreamUrl: string, nodeArgs: string[] = []): Promise<{ child: BenchChild; url: string }> {
  const child = spawnChild({
    name: 'naive',
    command: process.execPath,
    args: [...nodeArgs, path.join(benchDir, 'naive-proxy.ts'), upstreamUrl],
  });
  const port = await readyOrStop(child, waitForLine(child, /listening (\d+)/));
  return { child, url: `http://127.0.0.1:${port}` };
}

const wanted = (opts: BenchOptions, id: string) => opts.only.size === 0 || opts.only.has(id);

/** Node options that preload the memory probe (bench/mem-probe.ts) into a process under test. */
const MEM_PROBE_ARGS = ['--expose-gc', '--import', pathToFileURL(path.join(benchDir, 'mem-probe.ts')).href];

/** What the two process-owning sections need from the main run. */
interface SectionContext {
  opts: BenchOptions;
  work: string;
  creds: BenchCredentials;
  /** Built-in plugin types available to gateway rows (a row needing others is skipped). */
  registered: Set<string>;
  registryProblem?: string;
  /** Children started by a section go here too, so an interrupt stops them. */
  children: BenchChild[];
}

/** The gateway configurations of a section: no plugins, and the full pipeline (or audit alone). */
function sectionVariants(ctx: SectionContext): { variant: GatewayVariant; hooks: boolean; note?: string }[] {
  const byId = (id: string) => GATEWAY_VARIANTS.find((v) => v.id === id)!;
  const usable = (v: GatewayVariant) => v.needs.every((t) => ctx.registered.has(t));
  const out: { variant: GatewayVariant; hooks: boolean; note?: string }[] = [{ variant: byId('gateway'), hooks: false }];
  // The hooked row: the full pipeline; audit alone (it has onResponseMessage) if the others are missing.
  const hooked = [byId('gateway-full'), byId('gateway-audit')].find(usable);
  if (hooked) out.push({ variant: hooked, hooks: true });
  else out.push({ variant: byId('gateway-full'), hooks: true, note: ctx.registryProblem ?? 'neither the full pipeline\'s plugins nor audit are registered' });
  return out;
}

/** Starts a process for one section target, measures it, stops it (whatever happened). */
async function withChild<T>(ctx: SectionContext, start: () => Promise<{ child: BenchChild; url: string }>, measure: (c: { child: BenchChild; url: string }) => Promise<T>): Promise<T> {
  const started = await start();
  ctx.children.push(started.child);
  try {
    return await measure(started);
  } finally {
    await started.child.stop();
    ctx.children.splice(ctx.children.indexOf(started.child), 1);
  }
}

const firstLines = (err: unknown) => (err as Error).message.split('\n').slice(0, 3).join(' / ').slice(0, 600);

/**
 * One large SSE event through direct, the naive proxy, the no-plugin gateway and a hooked gateway
 * route, each proxy in a process of its own (its RSS peak is the event's), the route allowing an
 * event of that size (maxResponseBytes).
 */
async function largeEventSection(ctx: SectionContext, upstreamUrl: string, upstreamPid: number): Promise<LargeEventOutcome[]> {
  const { opts } = ctx;
  const spec = {
    bytes: opts.largeEventBytes, repeats: opts.largeEventRepeats, periodMs: opts.largeEventPeriodMs,
    minPhaseMs: opts.durationS * 1000, smallRps: opts.smallRps, graphName: 'social',
  };
  const out: LargeEventOutcome[] = [];
  const measure = async (o: LargeEventOutcome, url: string, pid: number, headers: Record<string, string>) => {
    log(`large SSE event: ${o.label}`);
    try {
      o.result = await runLargeEvent({ ...spec, url, pid, headers: { ...MCP_HEADERS, ...headers } });
      if (o.result.events === 0) o.note = `no event relayed: ${Object.entries(o.result.failures).map(([why, n]) => `${n}× ${why}`).join(', ')}`;
    } catch (err) {
      o.note = `failed: ${firstLines(err)}`;
    }
  };
  const direct: LargeEventOutcome = { id: 'direct', label: 'direct (no proxy)' };
  out.push(direct);
  await measure(direct, `${upstreamUrl}/mcp`, upstreamPid, {});

  const naive: LargeEventOutcome = { id: 'naive', label: 'naive http-proxy-3' };
  out.push(naive);
  try {
    await withChild(ctx, () => startNaive(upstreamUrl), (n) => measure(naive, `${n.url}/mcp`, n.child.pid, {}));
  } catch (err) {
    naive.note = `did not start: ${firstLines(err)}`;
  }

  for (const { variant, hooks, note } of sectionVariants(ctx)) {
    const o: LargeEventOutcome = { id: variant.id, label: variant.label, hooks };
    out.push(o);
    if (!gatewayAvailable()) { o.note = 'gateway/main.ts does not exist yet'; continue; }
    if (note) { o.note = note; continue; }
    // A process of its own (not the request rows' one), its config under its own name.
    const own = { ...variant, id: `large-event-${variant.id}` };
    const route = { maxResponseBytes: Math.max(16_000_000, opts.largeEventBytes + 1_000_000) };
    try {
      await withChild(
        ctx,
        async () => { const g = await startGatewayChild(own, path.join(ctx.work, 'sections'), `${upstreamUrl}/mcp`, ctx.creds, { route }); return { child: g.child, url: g.url }; },
        (g) => measure(o, g.url, g.child.pid, variant.auth ? { authorization: `Bearer ${ctx.creds.token}` } : {}),
      );
    } catch (err) {
      o.note = `gateway did not start: ${firstLines(err)}`;
    }
  }
  return out;
}

/**
 * Memory per idle SSE stream: an idle upstream, then the naive proxy (the Node floor, for reference),
 * the no-plugin gateway and the hooked gateway route, each in a process of its own with the memory
 * probe preloaded, one after another.
 */
async function manyStreamsSection(ctx: SectionContext): Promise<{ outcomes: ManyStreamsOutcome[]; note?: string }> {
  const { streams, note } = streamBudget(ctx.opts.manyStreams, openFileLimit(), ephemeralPorts());
  const out: ManyStreamsOutcome[] = [];
  if (streams === 0) return { outcomes: out, note: note ?? 'no streams' };
  const measure = async (o: ManyStreamsOutcome, child: BenchChild, url: string, headers: Record<string, string>) => {
    log(`${streams} idle SSE streams: ${o.label}`);
    try {
      // Quick runs only check that the row works; their "kept" figure may include clean-up still pending.
      o.result = await runManyStreams({ url, headers, child, streams, keptAfterMs: ctx.opts.quick ? 1000 : 3000 });
    } catch (err) {
      o.note = `failed: ${firstLines(err)}`;
    }
  };
  await withChild(ctx, () => startUpstream(0, 'idle-upstream'), async (upstream) => {
    const naive: ManyStreamsOutcome = { id: 'naive', label: 'naive http-proxy-3' };
    out.push(naive);
    try {
      await withChild(ctx, () => startNaive(upstream.url, MEM_PROBE_ARGS), (n) => measure(naive, n.child, `${n.url}/mcp`, {}));
    } catch (err) {
      naive.note = `did not start: ${firstLines(err)}`;
    }
    for (const { variant, note: skip } of sectionVariants(ctx)) {
      const o: ManyStreamsOutcome = { id: variant.id, label: variant.label, gateway: true };
      out.push(o);
      if (!gatewayAvailable()) { o.note = 'gateway/main.ts does not exist yet'; continue; }
      if (skip) { o.note = skip; continue; }
      const own = { ...variant, id: `many-streams-${variant.id}` };
      try {
        await withChild(
          ctx,
          async () => { const g = await startGatewayChild(own, path.join(ctx.work, 'sections'), `${upstream.url}/mcp`, ctx.creds, { nodeArgs: MEM_PROBE_ARGS }); return { child: g.child, url: g.url }; },
          (g) => measure(o, g.child, g.url, variant.auth ? { authorization: `Bearer ${ctx.creds.token}` } : {}),
        );
      } catch (err) {
        o.note = `gateway did not start: ${firstLines(err)}`;
      }
    }
  });
  return { outcomes: out, note };
}

/**
 * The stdio multiplexer's own bench (bench/stdio-mux.ts, written with the stdio upstream), loaded
 * lazily so that the rest of the bench runs even if that module fails to load.
 */
async function stdioSection(): Promise<StdioMuxResult | undefined> {
  const file = path.join(benchDir, 'stdio-mux.ts');
  if (!existsSync(file)) return undefined;
  const mod = (await import(pathToFileURL(file).href)) as { benchStdioMux?: () => Promise<StdioMuxResult> };
  return typeof mod.benchStdioMux === 'function' ? mod.benchStdioMux() : undefined;
}

async function main(): Promise<void> {
  const opts = readOptions();
  const started = Date.now();
  const work = await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-'));
  const children: BenchChild[] = [];
  const rows: RowOutcome[] = [];
  const streams: StreamOutcome[] = [];
  const memory: MemoryOutcome = {};
  const targets: Target[] = [];
  const cpu = cpus();
  const header = [
    `MCP gateway benchmark — ${new Date().toISOString()}`,
    `Node ${process.version} on ${osType()} ${release()}, ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`,
    `Settings: ${opts.durationS}s measured + ${opts.warmupS}s warm-up per row, ${opts.connections} connections, ` +
      `${opts.rounds} round(s); ${opts.streams} SSE streams, 1 event per ${opts.streamIntervalMs} ms each, ${opts.streamDurationS}s measured; ` +
      `large event ${(opts.largeEventBytes / 1e6).toFixed(1)} MB × ${opts.largeEventRepeats} with ${opts.smallRps} small req/s; ${opts.manyStreams} idle streams` +
      (opts.quick ? ' [BENCH_QUICK]' : ''),
  ];
  const sections: SectionOutcomes = {};

  // Interrupted (Ctrl-C, a CI timeout): stop the children before going, never leave them behind.
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping child processes`);
    void Promise.all(children.map((c) => c.stop())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    log('starting the upstream');
    const upstream = await startUpstream(opts.streamIntervalMs);
    children.push(upstream.child);
    const add = (t: Target) => { targets.push(t); rows.push({ id: t.id, label: t.label }); };

    if (wanted(opts, 'direct')) add({ id: 'direct', label: 'direct (no proxy)', url: `${upstream.url}/mcp`, pid: upstream.child.pid, headers: {} });

    if (wanted(opts, 'naive')) {
      const naive = await startNaive(upstream.url);
      children.push(naive.child);
      add({ id: 'naive', label: 'naive http-proxy-3', url: `${naive.url}/mcp`, pid: naive.child.pid, headers: {} });
    }

    if (wanted(opts, 'nginx')) {
      const nginx = findNginx();
      if (!nginx) rows.push({ id: 'nginx', label: 'nginx', note: 'nginx not installed (apt-get install nginx-light)' });
      else {
        try {
          const n = await startNginx(nginx, path.join(work, 'nginx'), Number(new URL(upstream.url).port));
          children.push(n.child);
          add({ id: 'nginx', label: 'nginx', url: `http://127.0.0.1:${n.port}/mcp`, pid: n.child.pid, headers: {} });
        } catch (err) {
          rows.push({ id: 'nginx', label: 'nginx', note: `did not start: ${(err as Error).message.split('\n')[0]}` });
        }
      }
    }

    let registered = new Set<string>();
    let registryProblem: string | undefined;
    if (gatewayAvailable()) {
      try {
        registered = await registeredPluginTypes();
      } catch (err) {
        registryProblem = `plugins/index.ts failed to load: ${(err as Error).message.split('\n')[0]}`;
      }
    }
    const creds: BenchCredentials = await mintCredentials();
    const variants = GATEWAY_VARIANTS.filter((v) => wanted(opts, v.id));
    if (variants.length > 0) {
      if (!gatewayAvailable()) {
        for (const v of variants) rows.push({ id: v.id, label: v.label, note: 'gateway/main.ts does not exist yet' });
      } else {
        for (const v of variants) {
          const missing = v.needs.filter((t) => !registered.has(t));
          if (missing.length > 0) {
            rows.push({ id: v.id, label: v.label, note: registryProblem ?? `plugin(s) not registered in plugins/index.ts: ${missing.join(', ')}` });
            continue;
          }
          try {
            log(`starting ${v.label}`);
            const gw = await startGatewayChild(v, path.join(work, 'gateways'), `${upstream.url}/mcp`, creds);
            children.push(gw.child);
            add({ id: v.id, label: v.label, url: gw.url, pid: gw.child.pid, output: gw.child.output, headers: v.auth ? { authorization: `Bearer ${creds.token}` } : {} });
          } catch (err) {
            rows.push({ id: v.id, label: v.label, note: `gateway did not start: ${(err as Error).message.split('\n').slice(0, 3).join(' / ')}` });
          }
        }
      }
    }

    if (wanted(opts, FEDERATION_ROW.id)) {
      const f = await startFederationRow({ baseDir: path.join(work, 'gateways'), upstreamUrl: `${upstream.url}/mcp`, creds, children, toolCall: TOOL_CALL, log });
      if ('target' in f) add(f.target); else rows.push({ ...FEDERATION_ROW, note: f.note });
    }
    // Idle RSS: the no-plugin gateway after start, before it has seen any traffic, once GC settled.
    // The naive proxy's idle RSS is read at the same moment, as the Node floor to compare it with.
    const plainGateway = targets.find((t) => t.id === 'gateway');
    const naiveTarget = targets.find((t) => t.id === 'naive');
    await new Promise((r) => setTimeout(r, 1500));
    if (plainGateway) memory.idleRssBytes = rssBytes(plainGateway.pid);
    else memory.note = 'no gateway row ran';
    if (naiveTarget) memory.naiveIdleRssBytes = rssBytes(naiveTarget.pid);

    // Probe once; a target that answers wrongly is dropped with its reason.
    for (const t of [...targets]) {
      const problem = await probe(t);
      if (problem) {
        targets.splice(targets.indexOf(t), 1);
        const lastLines = t.output?.().trim().split('\n').slice(-2).join(' / ').slice(0, 600);
        rows.find((r) => r.id === t.id)!.note = lastLines ? `${problem}; its last output: ${lastLines}` : problem;
      }
    }

    // Interleaved rounds: each round starts at a different row, so slow drifts of the machine do not
    // always hit the same row.
    const results = new Map<string, LoadResult[]>();
    for (let round = 0; round < opts.rounds; round++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + round) % targets.length];
        log(`round ${round + 1}/${opts.rounds}: ${t.label}`);
        const r = await runLoad({
          url: t.url,
          body: t.body ?? TOOL_CALL,
          headers: { ...MCP_HEADERS, ...t.headers },
          connections: opts.connections,
          durationS: opts.durationS,
          warmupS: opts.warmupS,
          pid: t.pid,
        });
        results.set(t.id, [...(results.get(t.id) ?? []), r]);
      }
    }
    for (const row of rows) {
      const list = results.get(row.id);
      if (!list) continue;
      row.load = medianLoad(list);
      if (row.load.non2xx + row.load.errors > 0) row.note = 'some requests failed: its figures are not comparable';
    }
    memory.loadRssBytes = rows.find((r) => r.id === 'gateway')?.load?.peakRssBytes;

    // SSE streams, through every proxy that answered the probe (the gateway's plugin rows are about
    // per-request cost; its streaming cost is the no-plugin row's).
    if (opts.streams > 0) {
      for (const t of targets.filter((t) => ['direct', 'naive', 'nginx', 'gateway'].includes(t.id))) {
        log(`${opts.streams} SSE streams: ${t.label}`);
        const result = await runStreams({
          url: t.url,
          headers: t.headers,
          streams: opts.streams,
          durationS: opts.streamDurationS,
          settleS: Math.min(2, (opts.streamIntervalMs / 1000) * 1.5),
          pid: t.pid,
        });
        const ok = result.opened > 0 && result.events > 0;
        streams.push({ id: t.id, label: t.label, result: ok ? result : undefined, note: ok ? undefined : `${result.failed} streams failed to open (${Object.entries(result.failures).map(([why, n]) => `${n}× ${why}`).join(', ')}), ${result.events} events` });
        if (t.id === 'gateway') memory.streamsRssBytes = result.peakRssBytes;
      }
    }

    const sectionCtx: SectionContext = { opts, work, creds, registered, registryProblem, children };
    if (opts.largeEventBytes > 0 && wanted(opts, 'large-event')) {
      sections.largeEvent = { bytes: opts.largeEventBytes, repeats: opts.largeEventRepeats, periodMs: opts.largeEventPeriodMs, minPhaseS: opts.durationS, smallRps: opts.smallRps };
      sections.largeEvents = await largeEventSection(sectionCtx, upstream.url, upstream.child.pid);
    }
    if (opts.manyStreams > 0 && wanted(opts, 'many-streams')) {
      const many = await manyStreamsSection(sectionCtx);
      sections.manyStreams = many.outcomes;
      sections.manyStreamsNote = many.note;
    }

    const verdicts = evaluateTargets(rows, streams, memory, sections);
    const report = renderReport({ header, rows, streams, memory, targets: verdicts, sections });
    process.stdout.write(`${report}\n`);

    let stdio: Omit<StdioMuxResult, 'report'> | { error: string } | undefined;
    if (wanted(opts, 'stdio')) {
      log('stdio upstream multiplexer');
      try {
        const result = await stdioSection();
        if (result) {
          const { report: text, ...figures } = result;
          stdio = figures;
          process.stdout.write(`\nStdio upstream multiplexer:\n${text}\n`);
        }
      } catch (err) {
        stdio = { error: (err as Error).message };
        process.stdout.write(`\nStdio upstream multiplexer: failed: ${(err as Error).message}\n`);
      }
    }

    const seal = benchSeal();
    process.stdout.write(`\nSealed session ids (per operation, in-process): seal ${seal.sealUs.toFixed(2)} µs, first open ${seal.firstOpenUs.toFixed(2)} µs, later opens ${seal.openUs.toFixed(2)} µs, with another principal ${seal.openForeignUs.toFixed(2)} µs\n`);

    const outFile = opts.out ?? path.join(await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-results-')), 'latest.json');
    await mkdir(path.dirname(path.resolve(outFile)), { recursive: true });
    await writeFile(outFile, `${JSON.stringify({
      startedAt: new Date(started).toISOString(),
      elapsedS: (Date.now() - started) / 1000,
      node: process.version,
      machine: { os: `${osType()} ${release()}`, cores: cpu.length, cpu: cpu[0]?.model.trim(), memoryBytes: totalmem() },
      options: { ...opts, only: [...opts.only] },
      rows, streams, memory, sections, targets: verdicts, stdio, seal,
    }, null, 2)}\n`);
    process.stdout.write(`\nResults written to ${outFile} (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await rm(work, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});

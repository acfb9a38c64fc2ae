/**
 * The stdio multiplexer's cost: `tools/call` against @modelcontextprotocol/server-memory
 *   - direct: the SDK client over stdio to its own process (the floor);
 *   - viaBridge: SDK clients over Streamable HTTP to the stdio bridge, several sessions sharing ONE
 *     process (`mode: shared`), i.e. what the gateway's core proxies to.
 * Latency is measured one call at a time (p50/p99), throughput with `concurrency` calls in flight.
 * The clients and the bridge share this process, so only latency and throughput are reported (no CPU
 * split); the gateway's own proxy overhead is measured by the main bench rows.
 *
 * `npm run bench` imports benchStdioMux(); standalone: `node bench/stdio-mux.ts` (BENCH_QUICK=1 for a
 * short run).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioUpstreamSchema } from '../config/schema.ts';
import { resolveCommand } from '../gateway/stdio/command.ts';
import { startStdioBridge, SUB_HEADER, TENANT_HEADER } from '../gateway/stdio/bridge.ts';

export interface StdioMuxOptions {
  /** Sequential calls for the latency figures. Default 2000 (300 with BENCH_QUICK). */
  calls?: number;
  /** Calls in flight for the throughput figure. Default 16. */
  concurrency?: number;
  /** Total calls of the throughput run. Default 4000 (600 with BENCH_QUICK). */
  throughputCalls?: number;
  /** MCP sessions sharing the bridge's one process in the throughput run. Default 4. */
  sessions?: number;
  /** Calls thrown away first (JIT, file cache). Default 200 (50 with BENCH_QUICK). */
  warmup?: number;
}

export interface StdioMuxFigures {
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Calls per second with `concurrency` in flight. */
  callsPerSec: number;
}

export interface StdioMuxResult {
  direct: StdioMuxFigures;
  viaBridge: StdioMuxFigures & { sessions: number };
  /** viaBridge minus direct, per call at p50, in milliseconds: the multiplexer + HTTP hop. */
  overheadP50Ms: number;
  /** Text table for `npm run bench`. */
  report: string;
}

const CALL = { name: 'search_nodes', arguments: { query: 'bench' } };

export async function benchStdioMux(opts: StdioMuxOptions = {}): Promise<StdioMuxResult> {
  const quick = process.env.BENCH_QUICK === '1';
  const calls = opts.calls ?? (quick ? 300 : 2000);
  const concurrency = opts.concurrency ?? 16;
  const throughputCalls = opts.throughputCalls ?? (quick ? 600 : 4000);
  const sessions = opts.sessions ?? 4;
  const warmup = opts.warmup ?? (quick ? 50 : 200);

  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-stdio-'));
  const memoryFile = path.join(dir, 'memory.jsonl');
  const server = resolveCommand('mcp-server-memory', dir, 'bench');
  const clients: Client[] = [];
  const bridge = await startStdioBridge(
    'bench',
    StdioUpstreamSchema.parse({ stdio: { command: 'mcp-server-memory', pathEnv: { MEMORY_FILE_PATH: memoryFile } } }).stdio,
    { log: pino({ level: 'silent' }), configDir: dir },
  );
  try {
    // Direct: the SDK's own stdio client, its own process on the same data file.
    const direct = new Client({ name: 'bench-direct', version: '1' }, { capabilities: {} });
    await direct.connect(
      new StdioClientTransport({
        command: server.file,
        args: server.prefixArgs,
        env: { ...(process.env as Record<string, string>), MEMORY_FILE_PATH: memoryFile },
        stderr: 'ignore',
      }),
    );
    clients.push(direct);
    await direct.callTool({
      name: 'create_entities',
      arguments: { entities: Array.from({ length: 20 }, (_, i) => ({ name: `bench-${i}`, entityType: 'bench', observations: ['x'] })) },
    });

    const viaBridge: Client[] = [];
    for (let i = 0; i < sessions; i++) {
      const c = new Client({ name: `bench-bridge-${i}`, version: '1' }, { capabilities: {} });
      await c.connect(
        new StreamableHTTPClientTransport(new URL(bridge.target), {
          requestInit: { headers: { ...bridge.headers, [TENANT_HEADER]: 'bench', [SUB_HEADER]: `s${i}` } },
        }),
      );
      clients.push(c);
      viaBridge.push(c);
    }
    if (bridge.processes().length !== 1) throw new Error('the bridge sessions should share one process');

    const directFigures = await measure([direct], { calls, concurrency, throughputCalls, warmup });
    const bridgeFigures = await measure(viaBridge, { calls, concurrency, throughputCalls, warmup });
    const overheadP50Ms = bridgeFigures.p50Ms - directFigures.p50Ms;
    const row = (label: string, f: StdioMuxFigures) =>
      `${label.padEnd(34)} ${f.p50Ms.toFixed(3).padStart(8)} ${f.p99Ms.toFixed(3).padStart(8)} ${f.callsPerSec.toFixed(0).padStart(10)}`;
    const report = [
      `stdio multiplexer: tools/call (${CALL.name}) on @modelcontextprotocol/server-memory`,
      `${calls} sequential calls for latency, ${throughputCalls} calls with ${concurrency} in flight for throughput`,
      `${'path'.padEnd(34)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'calls/s'.padStart(10)}`,
      row('direct SDK stdio client', directFigures),
      row(`bridge, ${sessions} sessions on 1 process`, bridgeFigures),
      `multiplexer + HTTP hop per call (p50): ${(overheadP50Ms * 1000).toFixed(0)} µs; ` +
        `throughput ratio bridge/direct: ${(bridgeFigures.callsPerSec / directFigures.callsPerSec).toFixed(2)}×`,
    ].join('\n');
    return { direct: directFigures, viaBridge: { ...bridgeFigures, sessions }, overheadP50Ms, report };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await bridge.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function measure(
  clients: Client[],
  o: { calls: number; concurrency: number; throughputCalls: number; warmup: number },
): Promise<StdioMuxFigures> {
  for (let i = 0; i < o.warmup; i++) await clients[i % clients.length].callTool(CALL);
  const samples = new Float64Array(o.calls);
  for (let i = 0; i < o.calls; i++) {
    const t = process.hrtime.bigint();
    await clients[i % clients.length].callTool(CALL);
    samples[i] = Number(process.hrtime.bigint() - t) / 1e6;
  }
  samples.sort();
  let remaining = o.throughputCalls;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: o.concurrency }, async (_, lane) => {
      const client = clients[lane % clients.length];
      while (remaining > 0) {
        remaining--;
        await client.callTool(CALL);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const pick = (q: number) => samples[Math.min(samples.length - 1, Math.max(0, Math.ceil(q * samples.length) - 1))];
  return {
    p50Ms: pick(0.5),
    p99Ms: pick(0.99),
    meanMs: samples.reduce((a, b) => a + b, 0) / samples.length,
    callsPerSec: o.throughputCalls / seconds,
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  benchStdioMux().then(
    (r) => console.log(r.report),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

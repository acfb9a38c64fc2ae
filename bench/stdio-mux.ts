/**
 * The stdio upstream's cost: `tools/call` against @modelcontextprotocol/server-memory
 *   - direct: the SDK client over stdio to its own process (the floor);
 *   - inProcess: SDK clients whose transport hands each message to the gateway's stdio upstream the way
 *     the core's stage 5 does (`dispatch`, then reads the answer's Readable as stage 6 does), several
 *     sessions sharing ONE process (`mode: shared`). This is the stdio path itself: virtual session,
 *     multiplexer, child. The targets apply to it (≥ 0.6× direct throughput, ≤ 150 µs added at p50);
 *   - gateway: SDK Streamable HTTP clients through a running gateway (no plugins) to the same upstream,
 *     i.e. what a real client sees; it adds the core's HTTP handling and the SDK's HTTP client, both of
 *     which any upstream pays (the main bench rows measure the core's share).
 * Latency is measured one call at a time (p50/p99), throughput with `concurrency` calls in flight.
 * The clients, the gateway and the upstream share this process, so only latency and throughput are
 * reported (no CPU split).
 *
 * `npm run bench` imports benchStdioMux(); standalone: `node bench/stdio-mux.ts` (BENCH_QUICK=1 for a
 * short run).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { StdioUpstreamSchema } from '../config/schema.ts';
import type { Principal } from '../gateway/contract.ts';
import { startGateway } from '../gateway/gateway.ts';
import { resolveCommand } from '../gateway/stdio/command.ts';
import { StdioUpstream } from '../gateway/stdio/upstream.ts';

export interface StdioMuxOptions {
  /** Sequential calls for the latency figures. Default 2000 (300 with BENCH_QUICK). */
  calls?: number;
  /** Calls in flight for the throughput figure. Default 16. */
  concurrency?: number;
  /** Total calls of the throughput run. Default 4000 (600 with BENCH_QUICK). */
  throughputCalls?: number;
  /** MCP sessions sharing the upstream's one process in the throughput run. Default 4. */
  sessions?: number;
  /** Calls thrown away first (JIT, file cache). Default 200 (50 with BENCH_QUICK). */
  warmup?: number;
  /** Also measure the whole gateway (SDK HTTP clients → gateway → stdio). Default true. */
  gateway?: boolean;
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
  inProcess: StdioMuxFigures & { sessions: number };
  gateway?: StdioMuxFigures & { sessions: number };
  /** inProcess minus direct, per call at p50, in milliseconds: what the stdio upstream adds. Target ≤ 0.15. */
  overheadP50Ms: number;
  /** inProcess / direct calls per second. Target ≥ 0.6. */
  throughputRatio: number;
  /** Text table for `npm run bench`. */
  report: string;
}

const CALL = { name: 'search_nodes', arguments: { query: 'bench' } };
const TARGET_RATIO = 0.6;
const TARGET_OVERHEAD_MS = 0.15;

export async function benchStdioMux(opts: StdioMuxOptions = {}): Promise<StdioMuxResult> {
  const quick = process.env.BENCH_QUICK === '1';
  const calls = opts.calls ?? (quick ? 300 : 2000);
  const concurrency = opts.concurrency ?? 16;
  const throughputCalls = opts.throughputCalls ?? (quick ? 600 : 4000);
  const sessions = opts.sessions ?? 4;
  const warmup = opts.warmup ?? (quick ? 50 : 200);
  const plan = { calls, concurrency, throughputCalls, warmup };

  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-stdio-'));
  const memoryFile = path.join(dir, 'memory.jsonl');
  const server = resolveCommand('mcp-server-memory', dir, 'bench');
  const clients: Client[] = [];
  const stdio = { command: 'mcp-server-memory', pathEnv: { MEMORY_FILE_PATH: memoryFile } };
  const upstream = new StdioUpstream('bench', StdioUpstreamSchema.parse({ stdio }).stdio, { log: pino({ level: 'silent' }), configDir: dir });
  let gateway: Awaited<ReturnType<typeof startGateway>> | undefined;
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

    const inProcess: Client[] = [];
    for (let i = 0; i < sessions; i++) {
      const c = new Client({ name: `bench-in-process-${i}`, version: '1' }, { capabilities: {} });
      await c.connect(new DispatchTransport(upstream, { issuer: 'bench', tenant: 'bench', subject: `s${i}`, scopes: [], claims: {} }));
      clients.push(c);
      inProcess.push(c);
    }
    if (upstream.processes().length !== 1) throw new Error('the sessions should share one process');

    const viaGateway: Client[] = [];
    if (opts.gateway ?? true) {
      const configPath = path.join(dir, 'gateway.yaml');
      await writeFile(configPath, [
        'listeners: [{ name: main, port: 0 }]',
        `upstreams: { memory: { stdio: { command: mcp-server-memory, pathEnv: { MEMORY_FILE_PATH: ${JSON.stringify(memoryFile)} } } } }`,
        'routes: [{ listener: main, path: /mcp, upstream: memory }]',
        'admin: { enabled: false }',
        'log: { level: error }',
      ].join('\n'));
      gateway = await startGateway({
        configPath, env: {}, installSignalHandlers: false, watchConfig: false,
        logDestination: new Writable({ write: (_c, _e, cb) => cb() }),
      });
      for (let i = 0; i < sessions; i++) {
        const c = new Client({ name: `bench-gateway-${i}`, version: '1' }, { capabilities: {} });
        await c.connect(new StreamableHTTPClientTransport(new URL(`${gateway.listenerUrl()}/mcp`)));
        clients.push(c);
        viaGateway.push(c);
      }
    }

    const [directFigures, inProcessFigures, gatewayFigures] = await measure(viaGateway.length ? [[direct], inProcess, viaGateway] : [[direct], inProcess], plan);
    const overheadP50Ms = inProcessFigures.p50Ms - directFigures.p50Ms;
    const throughputRatio = inProcessFigures.callsPerSec / directFigures.callsPerSec;
    const row = (label: string, f: StdioMuxFigures) =>
      `${label.padEnd(40)} ${f.p50Ms.toFixed(3).padStart(8)} ${f.p99Ms.toFixed(3).padStart(8)} ${f.callsPerSec.toFixed(0).padStart(10)}`;
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    const report = [
      `stdio upstream: tools/call (${CALL.name}) on @modelcontextprotocol/server-memory`,
      `${calls} sequential calls for latency, ${throughputCalls} calls with ${concurrency} in flight for throughput`,
      `${'path'.padEnd(40)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'calls/s'.padStart(10)}`,
      row('direct SDK stdio client', directFigures),
      row(`stdio upstream, ${sessions} sessions on 1 process`, inProcessFigures),
      ...(gatewayFigures ? [row(`SDK HTTP client → gateway → stdio (${sessions})`, gatewayFigures)] : []),
      `stdio upstream vs direct: +${(overheadP50Ms * 1000).toFixed(0)} µs per call at p50 (target ≤ ${TARGET_OVERHEAD_MS * 1000} µs: ` +
        `${verdict(overheadP50Ms <= TARGET_OVERHEAD_MS)}); throughput ${throughputRatio.toFixed(2)}× direct (target ≥ ${TARGET_RATIO}×: ` +
        `${verdict(throughputRatio >= TARGET_RATIO)})`,
      ...(gatewayFigures
        ? [`whole gateway vs direct: +${((gatewayFigures.p50Ms - directFigures.p50Ms) * 1000).toFixed(0)} µs at p50, ` +
          `${(gatewayFigures.callsPerSec / directFigures.callsPerSec).toFixed(2)}× throughput (client, core and upstream in one process)`]
        : []),
    ].join('\n');
    return {
      direct: directFigures,
      inProcess: { ...inProcessFigures, sessions },
      gateway: gatewayFigures && { ...gatewayFigures, sessions },
      overheadP50Ms,
      throughputRatio,
      report,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await gateway?.close();
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * An SDK client transport that reaches the stdio upstream as the core does: each message is one
 * dispatched exchange (POST, the body as bytes, the verified principal), and the answer's Readable is
 * read as stage 6 reads it (JSON whole, an event stream event by event).
 */
class DispatchTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  sessionId?: string;
  #upstream: StdioUpstream;
  #principal: Principal;

  constructor(upstream: StdioUpstream, principal: Principal) {
    this.#upstream = upstream;
    this.#principal = principal;
  }

  async start(): Promise<void> {}

  async send(message: JSONRPCMessage): Promise<void> {
    const exchange = new AbortController();
    const headers: Record<string, string> = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
    if (this.sessionId) headers['mcp-session-id'] = this.sessionId;
    const res = await this.#upstream.dispatch({
      method: 'POST', pathAndQuery: '/mcp', headers, body: Buffer.from(JSON.stringify(message)), principal: this.#principal, signal: exchange.signal,
    });
    const sid = res.headers['mcp-session-id'];
    if (typeof sid === 'string') this.sessionId = sid;
    // The core ends the exchange once the answer has gone out to its client, not before.
    res.once('close', () => setImmediate(() => exchange.abort()));
    if (res.statusCode === 202) return void res.resume();
    const sse = String(res.headers['content-type']).startsWith('text/event-stream');
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      if (!sse) return;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.indexOf('\ndata: ');
        // Validated as the SDK's own transports do (stdio and Streamable HTTP alike), so that the
        // client does the same work on every path.
        if (data !== -1) this.onmessage?.(JSONRPCMessageSchema.parse(JSON.parse(event.slice(data + 7))));
      }
    });
    res.once('end', () => {
      if (!sse && buffer) this.onmessage?.(JSONRPCMessageSchema.parse(JSON.parse(buffer)));
    });
  }

  async close(): Promise<void> {
    if (this.sessionId) {
      const exchange = new AbortController();
      const res = await this.#upstream.dispatch({
        method: 'DELETE', pathAndQuery: '/mcp', headers: { 'mcp-session-id': this.sessionId }, body: undefined, principal: this.#principal, signal: exchange.signal,
      });
      res.resume();
      exchange.abort();
    }
    this.onclose?.();
  }
}

/**
 * Measures several paths interleaved, so that they share whatever else the machine is doing (a loaded
 * 2-core CI box swings a path's p50 by hundreds of µs from one second to the next): latency in blocks
 * of calls that alternate between paths (long enough for each path's process to stay hot, as it would
 * under steady use), throughput in alternating rounds.
 */
async function measure(
  paths: Client[][],
  o: { calls: number; concurrency: number; throughputCalls: number; warmup: number },
): Promise<StdioMuxFigures[]> {
  for (const clients of paths) for (let i = 0; i < o.warmup; i++) await clients[i % clients.length].callTool(CALL);
  const BLOCK = 50;
  const samples = paths.map(() => new Float64Array(o.calls));
  for (let start = 0; start < o.calls; start += BLOCK) {
    for (let k = 0; k < paths.length; k++) {
      // Rotate which path goes first, so none always follows another.
      const p = (k + start / BLOCK) % paths.length;
      const clients = paths[p];
      for (let i = start; i < Math.min(o.calls, start + BLOCK); i++) {
        const t = process.hrtime.bigint();
        await clients[i % clients.length].callTool(CALL);
        samples[p][i] = Number(process.hrtime.bigint() - t) / 1e6;
      }
    }
  }
  const ROUNDS = 5;
  const seconds = paths.map(() => 0);
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < paths.length; k++) {
      const p = (k + round) % paths.length;
      const clients = paths[p];
      let remaining = Math.ceil(o.throughputCalls / ROUNDS);
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
      seconds[p] += Number(process.hrtime.bigint() - started) / 1e9;
    }
  }
  return samples.map((s, p) => {
    s.sort();
    const pick = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
    return {
      p50Ms: pick(0.5),
      p99Ms: pick(0.99),
      meanMs: s.reduce((a, b) => a + b, 0) / s.length,
      callsPerSec: (Math.ceil(o.throughputCalls / ROUNDS) * ROUNDS) / seconds[p],
    };
  });
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

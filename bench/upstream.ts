/**
 * The benchmark's upstream: a minimal MCP-shaped HTTP server, run as its own process.
 *
 * It is purpose-built rather than a real MCP server so that the upstream's own cost is tiny and the
 * same for every row; what the bench measures is then the proxy in front of it.
 * - POST (any path): a JSON-RPC request (or batch) is answered at once with `application/json`. A
 *   `tools/call` result echoes `arguments.graphName` so that a graph-rewrite plugin has a name to strip
 *   on the way back, as it would with the FalkorDB MCP server. Notifications-only bodies get `202`.
 *   `initialize` is answered as a stateless server would (no session id; the version asked for when
 *   known, `capabilities.tools`), and `tools/list` lists `query_graph`, so a federation can open a member
 *   session on it; any other request gets an empty result.
 * - GET with `Accept: text/event-stream` (any path): an endless SSE stream of JSON-RPC
 *   `notifications/message` events, one every BENCH_SSE_INTERVAL_MS (default 1000) per stream, each
 *   stamped with its send time (`sentAt`, epoch milliseconds with sub-millisecond precision). Each
 *   stream starts at a random phase, so N streams spread their events evenly instead of in bursts.
 *   BENCH_SSE_INTERVAL_MS=0 makes streams idle: one `notifications/tools/list_changed` event at once
 *   (proof that the stream is open end to end; graph-rewrite passes it, unlike `notifications/message`),
 *   then silence. The many-streams row measures memory per idle stream with it.
 * - A `tools/call` whose arguments carry `resultBytes: N` is answered with `text/event-stream`: ONE
 *   `message` event, a single `data:` line of about N bytes holding the JSON-RPC response (a text result
 *   of N bytes: a first line naming the graph, then Cypher-like rows), then the response ends. The
 *   large-event row sends these. The rows are built once per size and kept, so the upstream's cost per
 *   answer is a few writes.
 *
 * Prints `listening <port>` on stdout once ready (it listens on BENCH_UPSTREAM_PORT, default 0).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';

const intervalMs = Number(process.env.BENCH_SSE_INTERVAL_MS ?? 1000);
const port = Number(process.env.BENCH_UPSTREAM_PORT ?? 0);

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on this host. */
const wallClockMs = () => performance.timeOrigin + performance.now();

type JsonRpc = { jsonrpc?: string; id?: string | number | null; method?: string; params?: { name?: string; arguments?: Record<string, unknown>; protocolVersion?: unknown } };

/** Revisions this server accepts in `initialize`; another is answered with the newest, as the spec says. */
const VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];

/** Its one tool, as `tools/list` shows it. */
const QUERY_GRAPH = {
  name: 'query_graph',
  description: 'Runs a Cypher query on a graph (the bench answers one row without running anything).',
  inputSchema: { type: 'object', properties: { graphName: { type: 'string' }, query: { type: 'string' } }, required: ['graphName', 'query'] },
};

function answer(msg: JsonRpc): object | undefined {
  if (msg.id === undefined || msg.id === null || typeof msg.method !== 'string') return undefined;
  if (msg.method === 'tools/call') {
    const graph = msg.params?.arguments?.graphName;
    const text = typeof graph === 'string' ? `graph ${graph}: 1 row` : 'ok';
    return { jsonrpc: '2.0', id: msg.id, result: { content: [{ type: 'text', text }] } };
  }
  // A stateless server (no Mcp-Session-Id): what a client or a federation opening a member session needs.
  if (msg.method === 'initialize') {
    const asked = msg.params?.protocolVersion;
    const protocolVersion = typeof asked === 'string' && VERSIONS.includes(asked) ? asked : VERSIONS[0];
    return { jsonrpc: '2.0', id: msg.id, result: { protocolVersion, capabilities: { tools: { listChanged: false } }, serverInfo: { name: 'bench-upstream', version: '1.0.0' } } };
  }
  if (msg.method === 'tools/list') return { jsonrpc: '2.0', id: msg.id, result: { tools: [QUERY_GRAPH] } };
  return { jsonrpc: '2.0', id: msg.id, result: {} };
}

/** The JSON-escaped body rows of a large text result, by size (a bench asks for one or two sizes). */
const largeRows = new Map<number, Buffer>();

/**
 * Rows of a large text result, JSON-escaped (quotes and newlines escaped, as in a real tool result
 * that returns query rows as text), `bytes` long in the escaped form.
 */
function largeRowsOf(bytes: number): Buffer {
  let rows = largeRows.get(bytes);
  if (!rows) {
    const parts: string[] = [];
    let size = 0;
    for (let i = 0; size < bytes; i++) {
      const row = JSON.stringify(`(:Person {id: ${i}, name: "person ${i}", email: "p${i}@example.com"})\n`).slice(1, -1);
      parts.push(row);
      size += row.length;
    }
    rows = Buffer.from(parts.join('').slice(0, bytes).replace(/\\$/, ' '));
    largeRows.set(bytes, rows);
  }
  return rows;
}

/** One SSE event with one JSON-RPC response of about `bytes` bytes, then the end of the response. */
function answerLarge(msg: JsonRpc, bytes: number, res: ServerResponse): void {
  const graph = msg.params?.arguments?.graphName;
  const head = JSON.stringify(`graph ${typeof graph === 'string' ? graph : '?'}: large result\n`).slice(0, -1);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(`event: message\ndata: {"jsonrpc":"2.0","id":${JSON.stringify(msg.id)},"result":{"content":[{"type":"text","text":${head}`);
  res.write(largeRowsOf(bytes));
  res.end('"}]}}\n\n');
}

function onPost(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let parsed: JsonRpc | JsonRpc[];
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as JsonRpc | JsonRpc[];
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}');
      return;
    }
    const large = Array.isArray(parsed) ? undefined : parsed.params?.arguments?.resultBytes;
    if (!Array.isArray(parsed) && parsed.method === 'tools/call' && parsed.id != null && typeof large === 'number' && large > 0) {
      return answerLarge(parsed, Math.min(large, 1e9), res);
    }
    const replies = Array.isArray(parsed) ? parsed.map(answer).filter((r) => r !== undefined) : [answer(parsed)].filter((r) => r !== undefined);
    if (replies.length === 0) {
      res.writeHead(202).end();
      return;
    }
    const body = JSON.stringify(Array.isArray(parsed) ? replies : replies[0]);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}

function onStream(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  if (intervalMs === 0) {
    res.write('data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n');
    return;
  }
  let seq = 0;
  let interval: NodeJS.Timeout | undefined;
  const send = () => {
    const event = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: { seq: seq++, sentAt: wallClockMs() } } };
    res.write(`data: ${JSON.stringify(event)}\n\n`);
  };
  const phase = setTimeout(() => {
    send();
    interval = setInterval(send, intervalMs);
  }, Math.random() * intervalMs);
  const stop = () => { clearTimeout(phase); clearInterval(interval); };
  req.on('close', stop);
  res.on('close', stop);
}

const server = createServer((req, res) => {
  if (req.method === 'POST') return onPost(req, res);
  if (req.method === 'GET' && (req.headers.accept ?? '').includes('text/event-stream')) return onStream(req, res);
  res.writeHead(405, { allow: 'GET, POST' }).end();
});
// Proxies keep pooled connections to us between rows; a short idle timeout would make them race a
// close against a reuse and count spurious errors.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.maxConnections = Infinity;

server.listen(port, '127.0.0.1', () => {
  const { port: actual } = server.address() as { port: number };
  process.stdout.write(`listening ${actual}\n`);
});

process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});

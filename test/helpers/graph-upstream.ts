/**
 * A purpose-built multi-tenant graph MCP server for tests, in the shape of @falkordb/mcpserver (same
 * tool names, `graphName` argument, `list_graphs` text lines, `graph://listing` resource with `- name`
 * lines) but holding real graphs in memory, so tests can see what each tenant gets back.
 *
 * Behaviour the tests rely on:
 * - it knows nothing about tenants: it serves whatever names it receives, and records them (`received`);
 * - tool answers are streamed (SSE) by default, with a progress notification and a log line before the
 *   result, like a real server doing work;
 * - like @falkordb/mcpserver, it sends every log line (`notifications/message`, naming the graph) to
 *   EVERY open session: the cross-session leak the gateway must filter;
 * - errors quote the graph name it received (`Graph 'acme_x' not found`), in `isError` results;
 * - `query_graph` with query `SLEEP <ms>` waits that long (for in-flight tests).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

export interface GraphUpstream {
  /** Base URL of the MCP endpoint, e.g. `http://127.0.0.1:40123/mcp`. */
  url: string;
  /** The graphs, by the names the server stores (i.e. prefixed, when the gateway prefixes). */
  graphs: Map<string, string[]>;
  /** Every graph name a tool call or resource read received, in order. */
  received: string[];
  /** Number of tool calls running right now, and the most ever running at once. */
  running(): { now: number; max: number };
  close(): Promise<void>;
}

export async function startGraphUpstream(opts: {
  /** Initial graphs: name → node names. */
  graphs?: Record<string, string[]>;
  /** Answer POSTs with JSON instead of SSE. Default false (SSE). */
  json?: boolean;
} = {}): Promise<GraphUpstream> {
  const graphs = new Map(Object.entries(opts.graphs ?? {}).map(([k, v]) => [k, [...v]]));
  const received: string[] = [];
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: McpServer }>();
  let now = 0;
  let max = 0;

  /** The leak: a log line about one session's work goes to every session. */
  async function logEverywhere(data: string): Promise<void> {
    await Promise.all([...sessions.values()].map((s) => s.server.server.sendLoggingMessage({ level: 'info', logger: 'graph-upstream', data }).catch(() => {})));
  }

  function graphOrError(name: string) {
    const g = graphs.get(name);
    return g ? { graph: g } : { error: { isError: true, content: [{ type: 'text' as const, text: `Graph '${name}' not found` }] } };
  }

  function buildServer(): McpServer {
    const server = new McpServer({ name: 'graph-upstream', version: '1.0.0' }, { capabilities: { logging: {} } });
    server.registerTool('query_graph', {
      description: 'Run a query: "CREATE <node>" adds a node (and the graph), "MATCH" lists nodes, "SLEEP <ms>" waits.',
      inputSchema: { graphName: z.string(), query: z.string() },
    }, async ({ graphName, query }, extra) => {
      received.push(graphName);
      now++;
      max = Math.max(max, now);
      try {
        const token = extra._meta?.progressToken;
        if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: 1, total: 2 } });
        await logEverywhere(`Query started | {"graphName":"${graphName}","query":${JSON.stringify(query)}}`);
        const sleep = /^SLEEP (\d+)$/.exec(query);
        if (sleep) await new Promise((r) => setTimeout(r, Number(sleep[1])));
        const create = /^CREATE (\S+)$/.exec(query);
        if (create) {
          const g = graphs.get(graphName) ?? [];
          g.push(create[1]);
          graphs.set(graphName, g);
          return { content: [{ type: 'text', text: JSON.stringify({ graph: graphName, created: create[1] }) }] };
        }
        const found = graphOrError(graphName);
        if (found.error) return found.error;
        return { content: [{ type: 'text', text: JSON.stringify({ graph: graphName, nodes: found.graph }) }] };
      } finally {
        now--;
      }
    });
    server.registerTool('delete_graph', {
      description: 'Delete a graph.',
      inputSchema: { graphName: z.string() },
    }, async ({ graphName }) => {
      received.push(graphName);
      if (!graphs.delete(graphName)) return graphOrError(graphName).error!;
      return { content: [{ type: 'text', text: `Graph ${graphName} deleted` }] };
    });
    server.registerTool('list_graphs', { description: 'List every graph.', inputSchema: {} }, async () => ({
      content: [{ type: 'text', text: [...graphs.keys()].join('\n') }],
    }));
    server.registerTool('echo', { description: 'Echo a message.', inputSchema: { message: z.string() } }, async ({ message }) => ({
      content: [{ type: 'text', text: message }],
    }));
    server.registerResource('graph_list', 'graph://listing', { mimeType: 'text/plain' }, async (uri) => ({
      contents: [{ uri: uri.href, text: [...graphs.keys()].map((n) => `- ${n}`).join('\n') }],
    }));
    return server;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const id = req.headers['mcp-session-id'];
    const existing = typeof id === 'string' ? sessions.get(id) : undefined;
    if (existing) return existing.transport.handleRequest(req, res);
    if (typeof id === 'string') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } }));
      return;
    }
    const server = buildServer();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      enableJsonResponse: opts.json ?? false,
      onsessioninitialized: (sid) => { sessions.set(sid, { transport, server }); },
    });
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
    await server.connect(transport);
    await transport.handleRequest(req, res);
  }

  const http: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/mcp`,
    graphs,
    received,
    running: () => ({ now, max }),
    async close() {
      await Promise.all([...sessions.values()].map((s) => s.server.close().catch(() => {})));
      sessions.clear();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

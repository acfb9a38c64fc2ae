/**
 * An MCP server built with the SDK v2 (`createMcpHandler`), shaped like the FalkorDB graph server that
 * many tenants share through the gateway. It serves 2026-07-28 clients and, by default, 2025-era clients
 * through the SDK's per-request stateless fallback, so one upstream exercises both eras.
 *
 * Every HTTP request is recorded in `seen` exactly as it arrived, so tests can assert what the gateway
 * forwarded (standard `Mcp-*` headers, `Mcp-Param-*` headers, rewritten graph names, MRTR state).
 *
 * The graph set is server-wide on purpose: the server knows nothing of tenants, so `list_graphs` shows
 * every tenant's graphs and only the gateway's prefixing keeps tenants apart.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import * as z from 'zod/v4';
import {
  acceptedContent,
  createMcpHandler,
  fromJsonSchema,
  inputRequired,
  McpServer,
  type CallToolResult,
  type InputRequiredResult,
} from '@modelcontextprotocol/server';
import { toNodeHandler } from '@modelcontextprotocol/node';

export interface SeenRequest {
  /** The HTTP method (POST, GET, DELETE). */
  method: string;
  /** Header names in lower case, as Node parses them. */
  headers: IncomingHttpHeaders;
  /** The body parsed as JSON when it is JSON, the raw text otherwise, undefined when empty. */
  body: unknown;
}

export interface V2ServerOptions {
  /**
   * How 2025-era clients are served: `'stateless'` (default) is the SDK's per-request fallback
   * (no sessions: legacy GET/DELETE answer 405); `'off'` refuses them (the SDK's `legacy: 'reject'`).
   * The SDK has no stateful legacy mode inside `createMcpHandler`, so there is no third choice.
   */
  legacy?: 'stateless' | 'off';
}

export interface V2Server {
  /** e.g. `http://127.0.0.1:41234/mcp`. */
  url: string;
  seen: SeenRequest[];
  /**
   * Registers a tool (answers text `<name> called`) and publishes tools list_changed to open
   * `subscriptions/listen` streams. 2025-era clients are never told: the stateless fallback has no
   * standalone GET stream to carry an unsolicited notification.
   */
  addTool(name: string): void;
  close(): Promise<void>;
}

/** The argument the 2026 header annotation mirrors; its header name differs from the argument name on purpose. */
const QUERY_GRAPH_SCHEMA = {
  type: 'object',
  properties: {
    graphName: { type: 'string', description: 'The graph to query', 'x-mcp-header': 'Graph' },
    query: { type: 'string', description: 'A Cypher query' },
  },
  required: ['graphName', 'query'],
};

const PICKED_SCHEMA = z.object({ graph: z.string() });

function text(t: string): CallToolResult {
  return { content: [{ type: 'text', text: t }] };
}

export async function startV2Server(opts: V2ServerOptions = {}): Promise<V2Server> {
  const graphs = new Set<string>();
  const extraTools: string[] = [];
  // Every requestState handed out by pick_graph. Instances are per request, so the check that the
  // client (or a gateway in between) echoed it unaltered has to live out here.
  const issuedStates = new Set<string>();

  const build = (): McpServer => {
    const server = new McpServer({ name: 'v2-graph', version: '1.0.0' }, { capabilities: { logging: {} } });

    server.registerTool('echo', { description: 'Echoes text', inputSchema: z.object({ text: z.string() }) }, async ({ text: t }) =>
      text(t),
    );

    server.registerTool(
      'query_graph',
      { description: 'Runs a query on a graph', inputSchema: fromJsonSchema<{ graphName: string; query: string }>(QUERY_GRAPH_SCHEMA) },
      async ({ graphName, query }) => {
        graphs.add(graphName);
        return text(`graph ${graphName}: ran ${query}`);
      },
    );

    server.registerTool('list_graphs', { description: 'Lists every graph the server knows' }, async () => text([...graphs].join('\n')));

    server.registerTool(
      'pick_graph',
      { description: 'Asks the user which graph to use (multi round-trip)', inputSchema: z.object({ graphName: z.string() }) },
      async ({ graphName }, ctx): Promise<CallToolResult | InputRequiredResult> => {
        // No verify hook is installed, so this is the raw wire string the client echoed back.
        // A 2025-era client gets a tool error here instead: the SDK's legacy shim would push
        // elicitation/create, but per-request stateless serving cannot receive server-to-client requests.
        const state = ctx.mcpReq.requestState();
        if (state === undefined) {
          // The state embeds the argument as received, so a gateway rewriting strings inside it shows.
          const issued = `state:${graphName}:${randomUUID()}`;
          issuedStates.add(issued);
          return inputRequired({
            inputRequests: {
              graph: inputRequired.elicit({ message: `Which graph instead of ${graphName}?`, requestedSchema: PICKED_SCHEMA }),
            },
            requestState: issued,
          });
        }
        if (typeof state !== 'string' || !issuedStates.has(state)) {
          return { content: [{ type: 'text', text: 'requestState was altered' }], isError: true };
        }
        const picked = acceptedContent(ctx.mcpReq.inputResponses, 'graph', PICKED_SCHEMA);
        if (picked === undefined) return { content: [{ type: 'text', text: 'no graph was picked' }], isError: true };
        return text(`picked ${picked.graph} (asked about ${graphName})`);
      },
    );

    server.registerTool(
      'slow_progress',
      { description: 'Reports progress, then answers (streams as SSE)', inputSchema: z.object({ steps: z.number().int().min(0) }) },
      async ({ steps }, ctx) => {
        const progressToken = ctx.mcpReq._meta?.progressToken;
        // On 2026-07-28 this is sent only when the request's envelope names a log level; the SDK drops it otherwise.
        await ctx.mcpReq.log('info', `starting ${steps} steps`);
        for (let i = 1; i <= steps; i++) {
          if (progressToken !== undefined) {
            await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: i, total: steps, message: `step ${i}` } });
          }
        }
        return text(`done ${steps} steps`);
      },
    );

    for (const name of extraTools) {
      server.registerTool(name, { description: `Added at runtime: ${name}` }, async () => text(`${name} called`));
    }

    server.registerResource('graph-listing', 'graph://listing', { mimeType: 'text/plain', description: 'Every graph the server knows' }, async uri => ({
      contents: [{ uri: uri.href, mimeType: 'text/plain', text: [...graphs].map(g => `- ${g}`).join('\n') }],
    }));

    server.registerPrompt(
      'graph_prompt',
      { description: 'A prompt about one graph', argsSchema: z.object({ graphName: z.string() }) },
      async ({ graphName }) => ({
        messages: [{ role: 'user', content: { type: 'text', text: `Describe the graph ${graphName}` } }],
      }),
    );

    return server;
  };

  const handler = createMcpHandler(build, { legacy: opts.legacy === 'off' ? 'reject' : 'stateless' });
  const nodeHandler = toNodeHandler(handler);
  const seen: SeenRequest[] = [];

  // No Host/Origin guards in front: the gateway forwards with its own Host, and this is a loopback test fixture.
  const httpServer = http.createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    // Read the body ourselves to record it, then hand it over parsed (the adapter cannot read a drained stream).
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown = raw === '' ? undefined : raw;
      if (raw !== '') {
        try {
          body = JSON.parse(raw);
        } catch {
          // Not JSON: recorded as text, and the handler gets the text to reject as it sees fit.
        }
      }
      seen.push({ method: req.method ?? '', headers: req.headers, body });
      void nodeHandler(req, res, body);
    });
  });
  await new Promise<void>(resolve => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/mcp`,
    seen,
    addTool(name) {
      extraTools.push(name);
      // Instances are per request, so the change goes out through the handler's bus to open listen streams.
      handler.notify.toolsChanged();
    },
    async close() {
      // Closing the handler ends open listen streams gracefully; then no socket keeps the server alive.
      await handler.close();
      httpServer.closeAllConnections();
      await new Promise<void>(resolve => httpServer.close(() => resolve()));
    },
  };
}

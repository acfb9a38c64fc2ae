/**
 * Span attribute names. Standard ones follow OpenTelemetry's semantic conventions (HTTP, URL, network,
 * error: stable in `@opentelemetry/semantic-conventions`); the MCP ones follow the conventions for the
 * Model Context Protocol, which that package still lists as incubating and marks as moved to the
 * GenAI conventions repository. They are written out here rather than imported: the incubating entry
 * point is large, may rename them in a minor release, and the gateway loads nothing of OpenTelemetry
 * while tracing is off. The gateway's own attributes use the `mcpgw.` prefix, like its metrics.
 */
export const A = {
  // HTTP (stable)
  httpMethod: 'http.request.method',
  httpStatus: 'http.response.status_code',
  httpRoute: 'http.route',
  urlPath: 'url.path',
  urlFull: 'url.full',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  clientAddress: 'client.address',
  networkProtocol: 'network.protocol.name',
  errorType: 'error.type',
  // MCP (development status)
  mcpMethod: 'mcp.method.name',
  sessionId: 'mcp.session.id',
  protocolVersion: 'mcp.protocol.version',
  resourceUri: 'mcp.resource.uri',
  requestId: 'jsonrpc.request.id',
  toolName: 'gen_ai.tool.name',
  promptName: 'gen_ai.prompt.name',
  // The gateway's own
  route: 'mcpgw.route',
  listener: 'mcpgw.listener',
  upstream: 'mcpgw.upstream',
  /** `http`, `stdio` or `federation`: in-process upstreams have no server address to name them by. */
  upstreamKind: 'mcpgw.upstream.kind',
  exchangeId: 'mcpgw.exchange.id',
  tenant: 'mcpgw.tenant',
  refusalCode: 'mcpgw.refusal.code',
  refusalPlugin: 'mcpgw.refusal.plugin',
  messageRefusals: 'mcpgw.message_refusals',
  upstreamMs: 'mcpgw.upstream.head_ms',
  bytesOut: 'mcpgw.bytes_out',
} as const;

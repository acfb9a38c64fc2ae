/**
 * The `graph-rewrite` plugin's options, as written in gateway.yaml. Validated once, at load.
 * Defaults describe the FalkorDB MCP server (`@falkordb/mcpserver`); other upstreams configure their
 * own tool and argument names.
 */
import { z } from 'zod';

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** The FalkorDB MCP server's tools that take a graph name. */
export const FALKORDB_GRAPH_TOOLS = [
  'query_graph', 'query_graph_readonly', 'delete_graph', 'get_graph_schema', 'get_node_schema', 'get_relationship_schema',
];

const ToolRuleSchema = z.union([
  z.string().min(1),
  z.strictObject({
    /** Tool name, exactly as in `tools/call` `params.name`. */
    name: z.string().min(1),
    /** Argument holding the graph name. Default: the plugin's `argument`. */
    argument: z.string().min(1).optional(),
    /**
     * No longer used (accepted so older files still load, with a warning): the gateway core recomputes
     * 2026 `Mcp-Param-*` headers from the tool's own `x-mcp-header` declaration after the rewrite.
     */
    header: z.string().regex(HEADER_NAME, 'an HTTP header name').optional(),
  }),
]);

const ListingSchema = z.union([
  z.strictObject({
    /** A tool whose result's text content lists graph names, one per line (e.g. `list_graphs`). */
    tool: z.string().min(1),
    /** Text before the name on each line. Default `''`. */
    linePrefix: z.string().default(''),
  }),
  z.strictObject({
    /** A resource (`resources/read` URI) whose text lists graph names, one per line. */
    resource: z.string().min(1),
    /** Text before the name on each line, e.g. `- `. Default `''`. */
    linePrefix: z.string().default(''),
  }),
]);

export const GraphRewriteConfigSchema = z.strictObject({
  /**
   * Put between the tenant and the client's graph name: `acme` + `social` → `acme_social`. Default `_`.
   * The tenant alphabet must not contain it (a tenant containing it is refused, GW_ERR_TENANT_INVALID),
   * otherwise `acme` + `b_x` and `acme_b` + `x` would name the same graph.
   */
  separator: z.string().min(1).default('_'),
  /** Default name of the graph argument of the tools below. Default `graphName`. */
  argument: z.string().min(1).default('graphName'),
  /**
   * Fields of an accepted elicitation answer that hold a graph name (a user typing one into a form):
   * they get the tenant prefix too, in a 2026 retry's `inputResponses` and in a 2025 client's answer
   * to `elicitation/create`. Default: `[<argument>]`.
   */
  answerFields: z.array(z.string().min(1)).optional(),
  /**
   * Tools whose graph argument is rewritten: a name (uses `argument`) or `{ name, argument, header }`.
   * Default: the FalkorDB MCP server's graph tools.
   */
  tools: z.array(ToolRuleSchema).default(FALKORDB_GRAPH_TOOLS),
  /**
   * Answers that list graphs: only the caller's own graphs are kept, unprefixed; lines not in the
   * expected form, and non-text content, are dropped. Default: FalkorDB's `list_graphs` tool and
   * `graph://listing` resource (lines `- name`).
   */
  listings: z.array(ListingSchema).default([
    { tool: 'list_graphs', linePrefix: '' },
    { resource: 'graph://listing', linePrefix: '- ' },
  ]),
  /**
   * Upstream `notifications/message` (log lines). Some servers (the FalkorDB MCP server) send them to
   * every session, so one tenant would read another's queries.
   * - `drop` (default): never forwarded.
   * - `filter`: forwarded only when the line names one of the caller's graphs (prefix stripped).
   *   Best effort: a line naming graphs of two tenants would show the other one too.
   * - `pass`: forwarded unchanged. Only for upstreams that log per session.
   */
  logNotifications: z.enum(['drop', 'filter', 'pass']).default('drop'),
  /**
   * A `tools/call` of a tool not listed in `tools` or `listings` whose arguments contain a configured
   * graph argument name: `reject` (default, GW_ERR_GRAPH_TOOL_UNKNOWN) or `pass`. Rejecting keeps a tool
   * the upstream adds later from reaching unprefixed graphs.
   */
  unlistedToolWithArgument: z.enum(['reject', 'pass']).default('reject'),
});

export type GraphRewriteConfig = z.output<typeof GraphRewriteConfigSchema>;

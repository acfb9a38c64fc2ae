/**
 * `graph-rewrite`: many tenants share one graph server; each sees only its own graphs, under the names it
 * chose.
 *
 * Requests: the graph argument of configured tools becomes `<tenant><separator><name>` (every element
 * of a batch, since the core runs this hook per element), and a mirrored `Mcp-Param-*` header with it.
 * Responses (JSON or SSE alike): the prefix is stripped where the upstream echoes the graph name,
 * listings keep only the tenant's graphs, and upstream log notifications are dropped or filtered.
 *
 * Nothing here trusts the client: the tenant comes from the verified PRINCIPAL, and what cannot be
 * rewritten safely (missing name, unknown tool carrying a graph argument, a response the plugin cannot
 * attribute to a request) is refused rather than forwarded.
 */
import {
  Key, PRINCIPAL, definePlugin,
  type Exchange, type JSONRPCMessage, type JSONRPCRequest, type MessageContext, type MessageVerdict, type Verdict,
} from '../../gateway/contract.ts';
import { GraphRewriteConfigSchema, type GraphRewriteConfig } from './config.ts';
import { TenantNames, mapStrings, mirrorHeaderValue } from './names.ts';

/** JSON-RPC "invalid params". */
const RPC_INVALID_PARAMS = -32602;
/** JSON-RPC "internal error". */
const RPC_INTERNAL_ERROR = -32603;

/** Text that replaces a failed listing's error: the upstream's text could name other tenants' graphs. */
const LISTING_FAILED = 'The upstream could not list graphs (its error text is withheld by the gateway).';

interface ToolRule {
  argument: string;
  /** Lower-case mirror header name. */
  header: string;
}

const NAMES = new Key<TenantNames>('graphRewriteNames');

export default definePlugin({
  type: 'graph-rewrite',
  // No `requires`: any authentication plugin that sets PRINCIPAL will do (jwt, or a plugin author's
  // own); a route without one is refused at request time, fail closed (GW_ERR_GRAPH_REWRITE_NO_PRINCIPAL).
  config: GraphRewriteConfigSchema,
  create(config: GraphRewriteConfig, deps) {
    const rules = new Map<string, ToolRule>();
    for (const t of config.tools) {
      const rule = typeof t === 'string' ? { name: t } : t;
      const argument = rule.argument ?? config.argument;
      rules.set(rule.name, { argument, header: (rule.header ?? `mcp-param-${argument}`).toLowerCase() });
    }
    const graphArguments = new Set([...rules.values()].map((r) => r.argument));
    const listingTools = new Map<string, string>();
    const listingResources = new Map<string, string>();
    for (const l of config.listings) {
      if ('tool' in l) listingTools.set(l.tool, l.linePrefix);
      else listingResources.set(l.resource, l.linePrefix);
    }
    /** One TenantNames per tenant, built once: it holds compiled regular expressions. */
    const namesByTenant = new Map<string, TenantNames>();

    function rewriteRequest(req: JSONRPCRequest, x: Exchange, ctx: MessageContext, names: TenantNames): MessageVerdict | void {
      if (req.method !== 'tools/call') return;
      const params = (req.params ?? {}) as { name?: unknown; arguments?: unknown };
      const tool = params.name;
      if (typeof tool !== 'string') return; // not a call the upstream can run; it answers the error itself
      const args = isObject(params.arguments) ? params.arguments : undefined;
      const rule = rules.get(tool);
      if (!rule) {
        if (listingTools.has(tool) || config.unlistedToolWithArgument === 'pass') return;
        if (args && [...graphArguments].some((a) => a in args)) {
          return {
            kind: 'reject',
            rpcCode: RPC_INVALID_PARAMS,
            code: 'GW_ERR_GRAPH_TOOL_UNKNOWN',
            message: `Tool "${tool}" takes a graph argument but the gateway has no rewrite rule for it.`,
          };
        }
        return;
      }
      const name = args?.[rule.argument];
      if (typeof name !== 'string' || name.trim() === '') {
        return {
          kind: 'reject',
          rpcCode: RPC_INVALID_PARAMS,
          code: 'GW_ERR_GRAPH_NAME_INVALID',
          message: `Tool "${tool}" needs a non-empty string argument "${rule.argument}".`,
          data: { argument: rule.argument },
        };
      }
      const upstreamName = names.toUpstream(name);
      if (x.upstreamHeaders[rule.header] !== undefined) {
        // A mirror header describes one call; a batch cannot be described by one header, so it goes.
        if (ctx.framing === 'batch') delete x.upstreamHeaders[rule.header];
        else x.upstreamHeaders[rule.header] = mirrorHeaderValue(upstreamName);
      }
      return {
        kind: 'replace',
        message: { ...req, params: { ...req.params, arguments: { ...args, [rule.argument]: upstreamName } } },
      };
    }

    function rewriteLog(msg: JSONRPCMessage, names: TenantNames): MessageVerdict | void {
      if (config.logNotifications === 'pass') return;
      if (config.logNotifications === 'drop') return { kind: 'drop' };
      const params = (msg as { params?: unknown }).params;
      if (!names.mentionsOwn(JSON.stringify(params ?? null))) return { kind: 'drop' };
      return { kind: 'replace', message: { ...msg, params: mapStrings(params, (s) => names.stripPrefixes(s)) } as JSONRPCMessage };
    }

    function rewriteResponse(msg: JSONRPCMessage, request: JSONRPCRequest, names: TenantNames): MessageVerdict | void {
      const { result, error } = msg as { result?: unknown; error?: unknown };
      const params = (request.params ?? {}) as { name?: unknown; arguments?: unknown; uri?: unknown };
      if (request.method === 'tools/call' && typeof params.name === 'string') {
        const rule = rules.get(params.name);
        if (rule) {
          const upstreamName = isObject(params.arguments) ? params.arguments[rule.argument] : undefined;
          const clientName = typeof upstreamName === 'string' ? names.toClient(upstreamName) : undefined;
          if (clientName === undefined) return; // not a request this plugin rewrote
          const strip = (s: string) => names.stripName(s, upstreamName as string, clientName);
          // mapStrings keeps identity when nothing changed: then the message passes as it is, and the
          // core can forward the upstream's own bytes instead of re-encoding (a 20 MB result, say).
          if (result === undefined) {
            const mapped = mapStrings(error, strip);
            return mapped === error ? undefined : replaced(msg, { error: mapped });
          }
          const mapped = mapStrings(result, strip);
          return mapped === result ? undefined : replaced(msg, { result: mapped });
        }
        const linePrefix = listingTools.get(params.name);
        if (linePrefix !== undefined) return replaced(msg, filterToolListing(result, error, linePrefix, names));
      }
      if (request.method === 'resources/read' && typeof params.uri === 'string') {
        const linePrefix = listingResources.get(params.uri);
        if (linePrefix !== undefined) return replaced(msg, filterResourceListing(result, error, linePrefix, names));
      }
    }

    return {
      name: 'graph-rewrite',

      onRequest(x: Exchange): Verdict | void {
        const principal = x.get(PRINCIPAL);
        if (!principal) {
          return {
            kind: 'respond',
            status: 500,
            code: 'GW_ERR_GRAPH_REWRITE_NO_PRINCIPAL',
            message: 'graph-rewrite needs an authentication plugin before it on this route.',
          };
        }
        const { tenant } = principal;
        if (tenant === '' || tenant.includes(config.separator)) {
          // Two tenants could otherwise name the same graph (`acme` + `b_x` = `acme_b` + `x`).
          deps.log.warn({ code: 'GW_ERR_TENANT_INVALID', tenant }, 'tenant id is empty or contains the graph separator');
          return {
            kind: 'respond',
            status: 403,
            code: 'GW_ERR_TENANT_INVALID',
            message: `The tenant id cannot be used to name graphs (it is empty or contains "${config.separator}").`,
          };
        }
        let names = namesByTenant.get(tenant);
        if (!names) namesByTenant.set(tenant, (names = new TenantNames(tenant, config.separator)));
        x.set(NAMES, names);
      },

      onRequestMessage(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): MessageVerdict | void {
        if (!isRequest(msg)) return;
        const names = x.get(NAMES);
        if (!names) {
          return { kind: 'reject', rpcCode: RPC_INTERNAL_ERROR, code: 'GW_ERR_GRAPH_REWRITE_NO_PRINCIPAL', message: 'No tenant for this request.' };
        }
        return rewriteRequest(msg, x, ctx, names);
      },

      onResponseMessage(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): MessageVerdict | void {
        const names = x.get(NAMES);
        if (!names) return { kind: 'drop' }; // cannot happen after onRequest; never forward unfiltered
        const m = msg as { method?: unknown; id?: unknown };
        if (typeof m.method === 'string') {
          // Server notifications and server-to-client requests.
          return m.method === 'notifications/message' ? rewriteLog(msg, names) : undefined;
        }
        if (m.id === undefined) return;
        if (!ctx.request) {
          // A listing answer cannot be told from any other without its request: refuse, do not guess.
          return {
            kind: 'replace',
            message: {
              jsonrpc: '2.0',
              id: m.id as string | number,
              error: {
                code: RPC_INTERNAL_ERROR,
                message: 'The gateway cannot tell which request this response answers, so it withholds it.',
                data: { code: 'GW_ERR_GRAPH_RESPONSE_UNMATCHED' },
              },
            } as JSONRPCMessage,
          };
        }
        return rewriteResponse(msg, ctx.request, names);
      },
    };
  },
});

/** A `tools/call` listing result: text content filtered line by line, everything else dropped. */
function filterToolListing(result: unknown, error: unknown, linePrefix: string, names: TenantNames): { result?: unknown; error?: unknown } {
  if (result === undefined) return { error: withheldError(error) };
  if (!isObject(result)) return { result: { content: [] } };
  const content = Array.isArray(result.content) ? result.content : [];
  if (result.isError === true) return { result: { content: [{ type: 'text', text: LISTING_FAILED }], isError: true } };
  const kept = content
    .filter((c): c is { type: 'text'; text: string } => isObject(c) && c.type === 'text' && typeof c.text === 'string')
    .map((c) => ({ ...c, text: names.filterListing(c.text, linePrefix) }));
  // structuredContent is dropped: its shape is unknown, so it cannot be filtered.
  const { structuredContent: _dropped, ...rest } = result;
  return { result: { ...rest, content: kept } };
}

/** A `resources/read` listing result: each text content filtered, binary contents dropped. */
function filterResourceListing(result: unknown, error: unknown, linePrefix: string, names: TenantNames): { result?: unknown; error?: unknown } {
  if (result === undefined) return { error: withheldError(error) };
  if (!isObject(result)) return { result: { contents: [] } };
  const contents = Array.isArray(result.contents) ? result.contents : [];
  const kept = contents
    .filter((c): c is { text: string } => isObject(c) && typeof c.text === 'string')
    .map((c) => ({ ...c, text: names.filterListing(c.text, linePrefix) }));
  return { result: { ...result, contents: kept } };
}

function withheldError(error: unknown): unknown {
  const code = isObject(error) && typeof error.code === 'number' ? error.code : RPC_INTERNAL_ERROR;
  return { code, message: LISTING_FAILED };
}

/** The response `msg` with its result or error replaced (id and jsonrpc kept). */
function replaced(msg: JSONRPCMessage, body: { result?: unknown; error?: unknown }): MessageVerdict {
  const { result: _r, error: _e, ...head } = msg as Record<string, unknown>;
  return { kind: 'replace', message: { ...head, ...body } as JSONRPCMessage };
}

function isRequest(msg: JSONRPCMessage): msg is JSONRPCRequest {
  const m = msg as { method?: unknown; id?: unknown };
  return typeof m.method === 'string' && m.id !== undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

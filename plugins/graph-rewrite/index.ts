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
import { LRUCache } from 'lru-cache';
import { GraphRewriteConfigSchema, type GraphRewriteConfig } from './config.ts';
import { filterResourceListing, filterToolListing } from './listings.ts';
import { TenantNames, mapStrings } from './names.ts';

/** JSON-RPC "invalid params". */
const RPC_INVALID_PARAMS = -32602;
/** JSON-RPC "internal error". */
const RPC_INTERNAL_ERROR = -32603;


interface ToolRule {
  argument: string;
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
      rules.set(rule.name, { argument });
    }
    const graphArguments = new Set([...rules.values()].map((r) => r.argument));
    const answerFields = config.answerFields ?? [config.argument];
    if (config.tools.some((t) => typeof t !== 'string' && t.header !== undefined)) {
      deps.log.warn('graph-rewrite: `header` of a tool rule is no longer used; the gateway recomputes Mcp-Param-* headers from the tool\'s x-mcp-header declarations');
    }
    const listingTools = new Map<string, string>();
    const listingResources = new Map<string, string>();
    for (const l of config.listings) {
      if ('tool' in l) listingTools.set(l.tool, l.linePrefix);
      else listingResources.set(l.resource, l.linePrefix);
    }
    /** One TenantNames per tenant, built once: it holds compiled regular expressions. */
    const namesByTenant = new Map<string, TenantNames>();

    /**
     * Elicitation answers name graphs too (a user typing a graph name into a form): the fields named by
     * `answerFields` of every accepted answer get the tenant prefix, in a 2026 retry's `inputResponses`
     * and in a 2025 client's response to `elicitation/create` alike.
     */
    function prefixAnswer(answer: unknown, names: TenantNames): unknown {
      if (!isObject(answer) || answer.action !== 'accept' || !isObject(answer.content)) return answer;
      let content: Record<string, unknown> | undefined;
      for (const f of answerFields) {
        const v = answer.content[f];
        if (typeof v === 'string' && v.trim() !== '') {
          const upstream = names.toUpstream(v);
          (content ??= { ...answer.content })[f] = upstream;
          rememberAnswer(names, upstream);
        }
      }
      return content ? { ...answer, content } : answer;
    }

    /**
     * Names a tenant typed into answers lately. A 2025 answer travels in its own POST, apart from the
     * call whose result will echo the name, so the plugin remembers a few per tenant to unprefix them.
     */
    const answered = new LRUCache<string, string[]>({ max: 10_000 });
    function rememberAnswer(names: TenantNames, upstream: string): void {
      const list = answered.get(names.tenant) ?? [];
      if (!list.includes(upstream)) answered.set(names.tenant, [upstream, ...list].slice(0, 32));
    }

    /** Graph names in a retry's (already prefixed) accepted answers. */
    function answeredNames(responses: unknown): string[] {
      if (!isObject(responses)) return [];
      const out: string[] = [];
      for (const a of Object.values(responses)) {
        if (!isObject(a) || a.action !== 'accept' || !isObject(a.content)) continue;
        for (const f of answerFields) if (typeof a.content[f] === 'string') out.push(a.content[f] as string);
      }
      return out;
    }

    function prefixAnswers(responses: unknown, names: TenantNames): Record<string, unknown> | undefined {
      if (!isObject(responses)) return undefined;
      let out: Record<string, unknown> | undefined;
      for (const [k, v] of Object.entries(responses)) {
        const p = prefixAnswer(v, names);
        if (p !== v) (out ??= { ...responses })[k] = p;
      }
      return out;
    }

    function rewriteRequest(req: JSONRPCRequest, names: TenantNames): MessageVerdict | void {
      const params = (req.params ?? {}) as { name?: unknown; arguments?: unknown; inputResponses?: unknown };
      const inputResponses = prefixAnswers(params.inputResponses, names);
      const withAnswers: MessageVerdict | undefined = inputResponses
        ? { kind: 'replace', message: { ...req, params: { ...req.params, inputResponses } } }
        : undefined;
      if (req.method !== 'tools/call') return withAnswers;
      const tool = params.name;
      if (typeof tool !== 'string') return; // not a call the upstream can run; it answers the error itself
      const args = isObject(params.arguments) ? params.arguments : undefined;
      const rule = rules.get(tool);
      if (!rule) {
        // Checked before answers are prefixed: a retry's inputResponses must not carry a raw graph argument past it.
        if (!listingTools.has(tool) && config.unlistedToolWithArgument !== 'pass' && args && [...graphArguments].some((a) => a in args)) {
          return {
            kind: 'reject',
            rpcCode: RPC_INVALID_PARAMS,
            code: 'GW_ERR_GRAPH_TOOL_UNKNOWN',
            message: `Tool "${tool}" takes a graph argument but the gateway has no rewrite rule for it.`,
          };
        }
        return withAnswers;
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
      // 2026 mirror headers (`Mcp-Param-*`) are the core's: it recomputes them from the new body.
      return {
        kind: 'replace',
        message: { ...req, params: { ...req.params, arguments: { ...args, [rule.argument]: upstreamName }, ...(inputResponses ? { inputResponses } : {}) } },
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
          // The names the client gave, in the arguments and in elicitation answers, come back as it gave them.
          const given: Array<[string, string]> = [[upstreamName as string, clientName]];
          for (const n of [...answeredNames((params as { inputResponses?: unknown }).inputResponses), ...(answered.get(names.tenant) ?? [])]) {
            const c = names.toClient(n);
            if (c !== undefined) given.push([n, c]);
          }
          const strip = (s: string) => given.reduce((acc, [u, c]) => names.stripName(acc, u, c), s);
          // mapStrings keeps identity when nothing changed: then the message passes as it is, and the
          // core can forward the upstream's own bytes instead of re-encoding (a 20 MB result, say).
          if (result === undefined) {
            const mapped = mapStrings(error, strip);
            return mapped === error ? undefined : replaced(msg, { error: mapped });
          }
          const mapped = mapResult(result, strip);
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

      onRequestMessage(msg: JSONRPCMessage, x: Exchange): MessageVerdict | void {
        const names = x.get(NAMES);
        if (!names) {
          return { kind: 'reject', rpcCode: RPC_INTERNAL_ERROR, code: 'GW_ERR_GRAPH_REWRITE_NO_PRINCIPAL', message: 'No tenant for this request.' };
        }
        if (!isRequest(msg)) {
          // A 2025 client's answer to a server request (elicitation/create): its form fields may name graphs.
          const result = (msg as { result?: unknown }).result;
          const prefixed = prefixAnswer(result, names);
          return prefixed === result ? undefined : { kind: 'replace', message: { ...msg, result: prefixed } as JSONRPCMessage };
        }
        return rewriteRequest(msg, names);
      },

      onResponseMessage(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): MessageVerdict | void {
        const names = x.get(NAMES);
        if (!names) return { kind: 'drop' }; // cannot happen after onRequest; never forward unfiltered
        const m = msg as { method?: unknown; id?: unknown };
        if (typeof m.method === 'string') {
          // Server notifications and server-to-client requests.
          if (m.method === 'notifications/message') return rewriteLog(msg, names);
          if (m.method === 'elicitation/create') {
            // A 2025 server asking the user about a graph names it with the prefix: show the client's name.
            const params = (msg as { params?: unknown }).params;
            const mapped = mapStrings(params, (s) => names.stripPrefixes(s));
            return mapped === params ? undefined : { kind: 'replace', message: { ...msg, params: mapped } as JSONRPCMessage };
          }
          return undefined;
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

/**
 * A result with its strings mapped, except a multi round-trip `requestState`: that is the upstream's
 * opaque state (sealed by the core), and must come back byte for byte.
 */
function mapResult(result: unknown, fn: (s: string) => string): unknown {
  if (!isObject(result) || !('requestState' in result)) return mapStrings(result, fn);
  const { requestState, ...rest } = result;
  const mapped = mapStrings(rest, fn);
  return mapped === rest ? result : { ...mapped, requestState };
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

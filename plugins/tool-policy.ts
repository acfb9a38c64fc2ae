/**
 * `tool-policy`: which tools a caller may see and call, per tenant and per scope, with glob patterns.
 *
 * `tools/list` answers show only permitted tools; a `tools/call` of any other tool is refused with a
 * JSON-RPC error (GW_ERR_TOOL_DENIED, or GW_ERR_TOOL_NAME_TOO_LONG past MAX_TOOL_NAME_LENGTH) before it
 * reaches the upstream. The core reports the refusal to the audit plugin like any other.
 *
 * How a decision is made, most specific first:
 * 1. a scope the caller holds denies the tool → denied (a restriction no grant can lift);
 * 2. a scope the caller holds allows it → permitted (a grant, e.g. `graph:admin` may `delete_graph`);
 * 3. otherwise the caller's tenant rule, or `default` when the tenant has none: permitted when its
 *    `allow` matches and its `deny` does not.
 * Callers without a principal (unauthenticated routes) get `default`.
 */
import { z } from 'zod';
import {
  PRINCIPAL, definePlugin,
  type Exchange, type JSONRPCMessage, type MessageContext, type MessageVerdict, type Principal,
} from '../gateway/contract.ts';
import { compileWildcards, type WildcardMatcher } from '../gateway/wildcard.ts';

/** JSON-RPC "invalid params": what MCP servers answer for an unknown tool, so a denied tool looks alike. */
const RPC_INVALID_PARAMS = -32602;

const patterns = z.array(z.string().min(1));

const RuleSchema = z.strictObject({
  /** Tool name patterns the rule permits (`*` any run of characters, `?` one). Default `["*"]`. */
  allow: patterns.default(['*']),
  /** Tool name patterns the rule forbids; they win over `allow`. Default `[]`. */
  deny: patterns.default([]),
});

const ScopeRuleSchema = z.strictObject({
  /** Tools this scope grants, even when the tenant or default rule denies them. Default `[]`. */
  allow: patterns.default([]),
  /** Tools this scope forbids, whatever else the caller holds. Default `[]`. */
  deny: patterns.default([]),
});

export const ToolPolicyConfigSchema = z.strictObject({
  /** The rule for tenants without their own. Default: every tool permitted. */
  default: RuleSchema.default({ allow: ['*'], deny: [] }),
  /** Rules by tenant id; a tenant's rule replaces `default` for it. Default `{}`. */
  tenants: z.record(z.string().min(1), RuleSchema).default({}),
  /** Rules by OAuth scope (PRINCIPAL.scopes): grants and restrictions on top. Default `{}`. */
  scopes: z.record(z.string().min(1), ScopeRuleSchema).default({}),
});

export type ToolPolicyConfig = z.output<typeof ToolPolicyConfigSchema>;

/**
 * Longest tool name the plugin matches, lists or lets through. A `tools/call` naming a longer tool is
 * refused (GW_ERR_TOOL_NAME_TOO_LONG), and `tools/list` hides such tools (they could not be called).
 * The MCP spec says names SHOULD be at most 128 characters; the cap also bounds matching work, which
 * grows with name length × pattern length.
 */
export const MAX_TOOL_NAME_LENGTH = 256;

/** Patterns compiled once, at load; `*` any run of characters, `?` one (gateway/wildcard.ts). */
interface CompiledRule {
  allow: WildcardMatcher;
  deny: WildcardMatcher;
}

export class ToolPolicy {
  readonly #default: CompiledRule;
  readonly #tenants = new Map<string, CompiledRule>();
  readonly #scopes = new Map<string, CompiledRule>();

  constructor(config: ToolPolicyConfig) {
    const compile = (r: { allow: string[]; deny: string[] }): CompiledRule => ({ allow: compileWildcards(r.allow), deny: compileWildcards(r.deny) });
    this.#default = compile(config.default);
    for (const [tenant, rule] of Object.entries(config.tenants)) this.#tenants.set(tenant, compile(rule));
    for (const [scope, rule] of Object.entries(config.scopes)) this.#scopes.set(scope, compile(rule));
  }

  /** False for names longer than MAX_TOOL_NAME_LENGTH, whatever the rules say. */
  permits(principal: Principal | undefined, tool: string): boolean {
    if (tool.length > MAX_TOOL_NAME_LENGTH) return false;
    let granted = false;
    if (principal) {
      for (const scope of principal.scopes) {
        const rule = this.#scopes.get(scope);
        if (!rule) continue;
        if (rule.deny(tool)) return false;
        if (rule.allow(tool)) granted = true;
      }
    }
    if (granted) return true;
    const base = (principal && this.#tenants.get(principal.tenant)) || this.#default;
    return base.allow(tool) && !base.deny(tool);
  }
}

export default definePlugin({
  type: 'tool-policy',
  config: ToolPolicyConfigSchema,
  create(config: ToolPolicyConfig) {
    const policy = new ToolPolicy(config);

    return {
      name: 'tool-policy',

      onRequestMessage(msg: JSONRPCMessage, x: Exchange): MessageVerdict | void {
        const m = msg as { method?: unknown; id?: unknown; params?: { name?: unknown } };
        // A `tools/call` without an id (a notification) is checked too: a server may still run it, and
        // the core drops a refused notification without an answer.
        if (m.method !== 'tools/call') return;
        const tool = m.params?.name;
        if (typeof tool === 'string' && tool.length > MAX_TOOL_NAME_LENGTH) {
          // Neither matched nor echoed back: the refusal names the limit, not the tool.
          return {
            kind: 'reject',
            rpcCode: RPC_INVALID_PARAMS,
            code: 'GW_ERR_TOOL_NAME_TOO_LONG',
            message: `Tool names are at most ${MAX_TOOL_NAME_LENGTH} characters long.`,
            data: { maxLength: MAX_TOOL_NAME_LENGTH },
          };
        }
        if (typeof tool === 'string' && policy.permits(x.get(PRINCIPAL), tool)) return;
        return {
          kind: 'reject',
          rpcCode: RPC_INVALID_PARAMS,
          code: 'GW_ERR_TOOL_DENIED',
          message: typeof tool === 'string' ? `Tool "${tool}" is not available to this caller.` : 'tools/call needs a tool name.',
          data: typeof tool === 'string' ? { tool } : undefined,
        };
      },

      onResponseMessage(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): MessageVerdict | void {
        // Without the request (the core lost track of it) the shape decides: never show an unfiltered list.
        if (ctx.request && ctx.request.method !== 'tools/list') return;
        const result = (msg as { result?: { tools?: unknown } }).result;
        if (!result || !Array.isArray(result.tools)) return;
        const principal = x.get(PRINCIPAL);
        const tools = result.tools.filter((t) => {
          const name = (t as { name?: unknown } | null)?.name;
          return typeof name === 'string' && policy.permits(principal, name);
        });
        // A 2026 list says whether shared caches may keep it: filtered per caller, it is `private`
        // even when this caller happens to see everything (another would not).
        const scoped = 'cacheScope' in result && (result as { cacheScope?: unknown }).cacheScope !== 'private';
        if (tools.length === result.tools.length && !scoped) return;
        return { kind: 'replace', message: { ...msg, result: { ...result, tools, ...(scoped ? { cacheScope: 'private' } : {}) } } as JSONRPCMessage };
      },
    };
  },
});

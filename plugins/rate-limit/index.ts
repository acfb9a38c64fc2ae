/**
 * `rate-limit`: per-tenant (or per-user, or per-address) request budgets, counted per JSON-RPC request,
 * plus caps on concurrently open SSE streams and in-flight tool calls.
 *
 * Why per JSON-RPC request and not per HTTP request: a JSON-RPC batch carries many requests in one POST;
 * the core calls `onRequestMessage` once per element, so each element spends its own point and a batch
 * cannot buy twenty calls for the price of one.
 *
 * Refusals are returned, never written: a refused lone request carries typed `httpStatus`/`httpHeaders`
 * in its verdict, which the core turns into `429` + `Retry-After` + `RateLimit-*` for the whole HTTP
 * request; inside a batch or stream the same verdict becomes a JSON-RPC error with the message's id
 * and `retryAfterMs` in `data`.
 */
import {
  Key, PRINCIPAL, definePlugin,
  type Exchange, type JSONRPCMessage, type MessageContext, type MessageVerdict, type ResponseHead, type Verdict,
} from '../../gateway/contract.ts';
import { Budgets, type EffectiveLimit, type SpendResult } from './budgets.ts';
import { ConcurrencyCap } from './concurrency.ts';
import { RateLimitConfigSchema, type RateLimitConfig } from './config.ts';
import { policyHeader, refusalHeaders, seconds, stateHeader, type LimitState } from './headers.ts';
import { acquireLimiterState, canonicalJson } from './retained.ts';

/**
 * JSON-RPC error code of rate-limit refusals. MCP 2026-07-28 splits JSON-RPC's server range:
 * -32000…-32019 for implementations, -32020…-32099 for the specification; the gateway's codes stay
 * in the former (this was -32029 before that allocation).
 */
export const RPC_RATE_LIMITED = -32010;
/** JSON-RPC "internal error", for a refusal because the counter store is down (`onStoreError: closed`). */
const RPC_INTERNAL_ERROR = -32603;

/**
 * Set on the exchange when a budget was decided without the shared store (Redis failing): the value
 * says what was done instead. The audit plugin reads it so degraded decisions are visible.
 */
export const RATE_LIMIT_DEGRADED = new Key<string>('rateLimitDegraded');

/** This plugin's per-exchange state. */
interface LimitExchange {
  /** The budget key: `t:<tenant>`, `s:<issuer>:<subject>` or `ip:<address>`. */
  key: string;
  tenant: string | undefined;
  /** Whether this exchange holds one of the key's SSE stream leases. */
  holdsStream: boolean;
  /** In-flight tool-call leases this exchange holds (a batch may carry several calls). */
  inflight: number;
  /** Latest state of each limit this exchange spent from, for the response headers. */
  spent: Map<string, LimitState>;
}
const STATE = new Key<LimitExchange>('rateLimit');

export default definePlugin({
  type: 'rate-limit',
  config: RateLimitConfigSchema,
  create(config: RateLimitConfig, deps) {
    const log = deps.log;
    const namespace = config.namespace ?? deps.route.name;
    // Budgets and caps survive a reload that leaves this route's options unchanged (retained.ts).
    const held = acquireLimiterState(deps.shared, `${deps.route.name}\0${canonicalJson(config)}`, () => ({
      budgets: new Budgets(config, `${deps.shared.redisKeyPrefix}rl:${namespace}`, log, deps.shared.redis),
      streams: new ConcurrencyCap(config.maxStreams),
      inflight: new ConcurrencyCap(config.maxInflightToolCalls),
    }));
    const { budgets, streams, inflight } = held.state;
    const needsPrincipal = config.key !== 'ip';

    function budgetKey(x: Exchange): { key: string; tenant: string | undefined } | undefined {
      const p = x.get(PRINCIPAL);
      if (config.key === 'tenant') return p ? { key: `t:${p.tenant}`, tenant: p.tenant } : undefined;
      if (config.key === 'subject') {
        return p ? { key: `s:${encodeURIComponent(p.issuer)}:${encodeURIComponent(p.subject)}`, tenant: p.tenant } : undefined;
      }
      return { key: `ip:${clientAddress(x, config.trustedProxyHops)}`, tenant: p?.tenant };
    }

    /** Spends a point from every limit the request matches, stopping at the first refusal. */
    async function spendAll(state: LimitExchange, x: Exchange, method: string, tool: string | undefined): Promise<SpendResult | undefined> {
      for (const limit of budgets.matching(method, tool)) {
        const r = await budgets.spend(limit.name, state.tenant, state.key);
        if (r.degraded) x.set(RATE_LIMIT_DEGRADED, r.degraded);
        if (r.kind === 'allowed') state.spent.set(r.limit.name, { limit: r.limit, remaining: r.remaining, resetMs: r.resetMs });
        else if (r.kind !== 'uncounted') return r;
      }
      return undefined;
    }

    function refusal(r: SpendResult, msg: { method: string }, ctx: MessageContext): MessageVerdict {
      const lone = ctx.framing === 'json';
      if (r.kind === 'exceeded') {
        const data: Record<string, unknown> = { retryAfterMs: r.retryAfterMs, limit: r.limit.name };
        return {
          kind: 'reject',
          ...(lone ? { httpStatus: 429, httpHeaders: refusalHeaders(r.limit, r.retryAfterMs) } : {}),
          rpcCode: RPC_RATE_LIMITED,
          code: 'GW_ERR_RATE_LIMITED',
          message: `Rate limit "${r.limit.name}" exceeded (${describe(r.limit)}) for ${msg.method}; retry in ${seconds(r.retryAfterMs)}s.`,
          data,
        };
      }
      // `unavailable`: the store failed and onStoreError is `closed`.
      const data: Record<string, unknown> = { limit: r.limit.name };
      return {
        kind: 'reject',
        ...(lone ? { httpStatus: 503 } : {}),
        rpcCode: RPC_INTERNAL_ERROR,
        code: 'GW_ERR_RATE_LIMIT_UNAVAILABLE',
        message: 'The rate-limit store is unavailable and this route refuses requests it cannot count.',
        data,
      };
    }

    return {
      name: 'rate-limit',

      close(): void {
        held.release();
      },

      onRequest(x: Exchange): Verdict | void {
        const who = budgetKey(x);
        if (!who) {
          return {
            kind: 'respond',
            status: 500,
            code: 'GW_ERR_RATE_LIMIT_NO_PRINCIPAL',
            message: `rate-limit keyed by ${config.key} needs an authentication plugin before it on this route.`,
          };
        }
        const state: LimitExchange = { ...who, holdsStream: false, inflight: 0, spent: new Map() };
        x.set(STATE, state);
        if (opensStream(x)) {
          if (!streams.acquire(who.key)) {
            return {
              kind: 'respond',
              status: 429,
              code: 'GW_ERR_TOO_MANY_STREAMS',
              message: `At most ${streams.max} SSE streams may be open at once; close one first.`,
              data: { maxStreams: streams.max },
            };
          }
          state.holdsStream = true;
        }
      },

      async onRequestMessage(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): Promise<MessageVerdict | void> {
        const request = asRequest(msg);
        if (!request) return; // notifications and client responses are not counted
        const state = x.get(STATE);
        if (!state) {
          // onRequest did not run or refused: never let an uncounted request through.
          return { kind: 'reject', rpcCode: RPC_INTERNAL_ERROR, code: 'GW_ERR_RATE_LIMIT_NO_PRINCIPAL', message: 'No rate-limit key for this request.' };
        }
        const tool = request.method === 'tools/call' ? toolName(request.params) : undefined;
        const refused = await spendAll(state, x, request.method, tool);
        if (refused) return refusal(refused, request, ctx);
        if (request.method === 'tools/call' && inflight.max > 0) {
          if (!inflight.acquire(state.key)) {
            const data: Record<string, unknown> = { maxInflightToolCalls: inflight.max };
            return {
              kind: 'reject',
              ...(ctx.framing === 'json' ? { httpStatus: 429 } : {}),
              rpcCode: RPC_RATE_LIMITED,
              code: 'GW_ERR_TOO_MANY_INFLIGHT',
              message: `At most ${inflight.max} tool calls may run at once; wait for one to finish.`,
              data,
            };
          }
          state.inflight++;
        }
      },

      onResponse(res: ResponseHead, x: Exchange): void {
        if (!config.headers) return;
        const state = x.get(STATE);
        if (!state || state.spent.size === 0) return;
        const limits: EffectiveLimit[] = [];
        for (const s of state.spent.values()) limits.push(s.limit);
        res.headers['ratelimit-policy'] = policyHeader(limits);
        res.headers.ratelimit = stateHeader(state.spent.values());
      },

      onDone(x: Exchange): void {
        const state = x.get(STATE);
        if (!state) return;
        if (state.holdsStream) streams.release(state.key);
        inflight.release(state.key, state.inflight);
        // onDone runs once, but clearing makes a double release impossible whatever the core does.
        state.holdsStream = false;
        state.inflight = 0;
      },
    };
  },
});

function describe(l: EffectiveLimit): string {
  return `${l.points} per ${l.windowMs / 1000}s`;
}

/**
 * A JSON-RPC request (has `method` and `id`). Checked structurally rather than with the SDK's zod guard:
 * this runs for every message on the hot path and the core has already parsed the message as JSON-RPC.
 */
function asRequest(msg: JSONRPCMessage): { method: string; params?: unknown } | undefined {
  const m = msg as { method?: unknown; id?: unknown; params?: unknown };
  return typeof m.method === 'string' && m.id !== undefined ? (m as { method: string; params?: unknown }) : undefined;
}

function toolName(params: unknown): string | undefined {
  const name = (params as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

/**
 * A long-lived stream: a 2025 GET stream, or a 2026 `subscriptions/listen` POST (its `Mcp-Method`
 * header is checked against the body by the core before any message reaches a plugin, so a client
 * cannot dodge the cap by naming another method).
 */
function opensStream(x: Exchange): boolean {
  if (x.method === 'GET') return acceptsEventStream(x);
  return x.method === 'POST' && x.req.headers['mcp-method'] === 'subscriptions/listen';
}

function acceptsEventStream(x: Exchange): boolean {
  const accept = x.req.headers.accept;
  return typeof accept === 'string' && accept.toLowerCase().includes('text/event-stream');
}

/**
 * The client's address: the socket's peer, or with `hops` trusted proxies the entry `hops` places from
 * the right of X-Forwarded-For (entries further left were written by the client and prove nothing).
 */
export function clientAddress(x: Exchange, hops: number): string {
  const peer = x.req.socket?.remoteAddress ?? 'unknown';
  if (hops === 0) return peer;
  const header = x.req.headers['x-forwarded-for'];
  const entries = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return entries[entries.length - hops] ?? peer;
}

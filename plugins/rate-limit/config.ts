/**
 * The `rate-limit` plugin's options, as written in gateway.yaml. Validated once, at load.
 */
import { z } from 'zod';
import { duration, int } from '../../config/units.ts';

const limitName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'use letters, digits, "_", "." and "-"');

/** How much of a budget one limit gives: `points` requests per `duration`. */
const BudgetSchema = z.strictObject({
  /** Requests allowed per window. `0` refuses every matching request. */
  points: int().pipe(z.number().min(0)),
  /** Window length (fixed window, starting at the first request), e.g. `1s`, `1m`, `1h`; at least 1s. */
  duration: duration()
    .pipe(z.number().min(1000, 'at least 1s'))
    .refine((ms) => ms % 1000 === 0, 'whole seconds (the Redis store counts in seconds)'),
});

export const LimitSchema = z.strictObject({
  /**
   * Name of the limit: shown in `RateLimit-Policy`/`RateLimit` headers and refusals, used in store keys
   * and in `tenants` overrides. Must be unique within the plugin.
   */
  name: limitName,
  ...BudgetSchema.shape,
  /**
   * Which JSON-RPC requests count against this limit. Default: every request.
   * A request counts against EVERY limit it matches, so a general limit and a tighter one for one tool
   * work together.
   */
  match: z
    .strictObject({
      /** JSON-RPC method, e.g. `tools/call` or `tools/list`. Default: any method. */
      method: z.string().min(1).optional(),
      /**
       * Tool names (for `tools/call`, compared to `params.name`); `*` and `?` are wildcards, so
       * `graphs__*` is every tool of one federation member (docs/federation.md). Default: any tool.
       */
      tools: z.array(z.string().min(1)).min(1).optional(),
    })
    .refine((m) => !m.tools || m.method === undefined || m.method === 'tools/call', 'tools only apply to method tools/call')
    .default({}),
});

export const RateLimitConfigSchema = z
  .strictObject({
    /**
     * Whose budget a request spends: `tenant` (PRINCIPAL.tenant, default), `subject` (issuer + subject:
     * one budget per user) or `ip` (the client address, for routes without authentication). With
     * `tenant` or `subject`, a request without a verified principal is refused (fail closed,
     * GW_ERR_RATE_LIMIT_NO_PRINCIPAL): put an authentication plugin before this one.
     */
    key: z.enum(['tenant', 'subject', 'ip']).default('tenant'),
    /**
     * For `key: ip` behind trusted proxies: how many proxies in front of the gateway append to
     * `X-Forwarded-For`. The client address is the entry that many places from the right. Default 0:
     * use the socket's address and ignore the header (a client can write anything into it).
     */
    trustedProxyHops: int().pipe(z.number().min(0)).default(0),
    /**
     * The budgets. Default: one limit `default` of 600 requests per minute. An empty list disables
     * request limits (the concurrency caps below still apply).
     */
    limits: z.array(LimitSchema).default([{ name: 'default', points: 600, duration: 60_000, match: {} }]),
    /**
     * Per-tenant overrides: `tenants: { acme: { default: { points: 2000 } } }`. Keys are tenant ids,
     * then limit names; omitted fields keep the limit's value. Applied by the caller's tenant whatever
     * `key` is, so `key: subject` gives every user of `acme` the acme budget.
     */
    tenants: z
      .record(
        z.string().min(1),
        z.record(limitName, BudgetSchema.partial()),
      )
      .default({}),
    /**
     * `memory`: counters live in this gateway process (one replica). `redis`: counters live in the
     * top-level `redis` of gateway.yaml, so every replica spends one shared budget. Default `memory`.
     */
    store: z.enum(['memory', 'redis']).default('memory'),
    /**
     * What happens while the Redis store fails (unreachable, or slower than `storeTimeout`). Every
     * failure is logged (warn, at most once per 10s per limit) and noted in the exchange for the audit.
     * - `insurance` (default): count in this process's memory instead, with `insurancePoints` per window
     *   per replica: limits still hold, but per replica rather than shared.
     * - `closed`: refuse the request (503 GW_ERR_RATE_LIMIT_UNAVAILABLE). Safest, and an outage of
     *   Redis becomes an outage of the gateway.
     * - `open`: let the request through uncounted. RISK: no limit at all while Redis is down.
     */
    onStoreError: z.enum(['insurance', 'closed', 'open']).default('insurance'),
    /**
     * Budget of the in-memory insurance limiter, as a fraction of each limit's points (rounded up), for
     * `onStoreError: insurance`. Set it to about 1 / number of replicas. Default 1.
     */
    insuranceFraction: z.number().gt(0).max(1).default(1),
    /** Longest wait for the Redis store before it counts as failed. Default 500ms. */
    storeTimeout: duration().pipe(z.number().min(1)).default(500),
    /**
     * Store key namespace. Routes (or gateways) with the same namespace share budgets. Default: the
     * route's name.
     */
    namespace: z.string().min(1).optional(),
    /**
     * Most SSE streams (GET requests accepting `text/event-stream`, and 2026 `subscriptions/listen`
     * POSTs) one key may hold open at once, per
     * gateway process. Refused with 429 GW_ERR_TOO_MANY_STREAMS. Default 0: no cap.
     */
    maxStreams: int().pipe(z.number().min(0)).default(0),
    /**
     * Most `tools/call` requests one key may have in flight at once, per gateway process (a call is in
     * flight until its HTTP exchange ends, i.e. its JSON or SSE response is complete). Refused with
     * GW_ERR_TOO_MANY_INFLIGHT. Default 0: no cap.
     */
    maxInflightToolCalls: int().pipe(z.number().min(0)).default(0),
    /** Send `RateLimit-Policy`/`RateLimit` headers on allowed responses. Default true. */
    headers: z.boolean().default(true),
  })
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.limits.forEach((l, i) => {
      if (names.has(l.name)) ctx.addIssue({ code: 'custom', path: ['limits', i, 'name'], message: `duplicate limit name "${l.name}"` });
      names.add(l.name);
    });
    for (const [tenant, overrides] of Object.entries(c.tenants)) {
      for (const limit of Object.keys(overrides)) {
        if (!names.has(limit)) ctx.addIssue({ code: 'custom', path: ['tenants', tenant, limit], message: `no limit named "${limit}"` });
      }
    }
  });

export type RateLimitConfig = z.output<typeof RateLimitConfigSchema>;
export type LimitConfig = z.output<typeof LimitSchema>;

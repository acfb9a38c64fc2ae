/**
 * Budgets: one counter per (limit, key) in memory or Redis, with per-tenant overrides, a timeout on the
 * store and the configured behaviour when the store fails.
 *
 * Counting is delegated to rate-limiter-flexible: its Redis limiter increments and reads the TTL in one
 * Lua script, so concurrent requests on any number of replicas are counted exactly.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { compileWildcards, type WildcardMatcher } from '../../gateway/wildcard.ts';
import type { LimitConfig, RateLimitConfig } from './config.ts';

/** A limit with the budget that applies to one tenant (the limit's own, or that tenant's override). */
export interface EffectiveLimit {
  name: string;
  points: number;
  windowMs: number;
}

export type SpendResult =
  /** Counted and within budget (or counted by the insurance limiter: `degraded` says so). */
  | { kind: 'allowed'; limit: EffectiveLimit; remaining: number; resetMs: number; degraded?: string }
  /** Over budget. */
  | { kind: 'exceeded'; limit: EffectiveLimit; retryAfterMs: number; degraded?: string }
  /** The store failed and `onStoreError: open` let the request through uncounted. */
  | { kind: 'uncounted'; limit: EffectiveLimit; degraded: string }
  /** The store failed and `onStoreError: closed` refuses. */
  | { kind: 'unavailable'; limit: EffectiveLimit; degraded: string };

/** The limiters of one limit: the default budget and one per tenant with an override. */
interface LimitCounters {
  config: LimitConfig;
  /** `match.tools` compiled (wildcards: `graphs__*` is every tool of one federation member). */
  tools: WildcardMatcher | undefined;
  base: Counter;
  byTenant: Map<string, Counter>;
}

interface Counter {
  limit: EffectiveLimit;
  /** Memory limiter, or the Redis limiter when the store is Redis. */
  primary: RateLimiterAbstract;
  /** In-memory stand-in used while Redis fails (`onStoreError: insurance`). */
  insurance?: RateLimiterAbstract;
}

/** How often a failing store is reported in the log, per limit. */
const STORE_ERROR_LOG_INTERVAL_MS = 10_000;

export class Budgets {
  readonly #counters = new Map<string, LimitCounters>();
  readonly #config: RateLimitConfig;
  readonly #log: Logger;
  readonly #lastStoreErrorLog = new Map<string, number>();
  readonly #redis: Redis | undefined;

  /**
   * @param keyPrefix prefix of every store key, e.g. `mcpgw:rl:<namespace>`; ends up as
   *   `<keyPrefix>:<limit>:<key>`.
   */
  constructor(config: RateLimitConfig, keyPrefix: string, log: Logger, redis: Redis | undefined) {
    this.#config = config;
    this.#log = log;
    if (config.store === 'redis' && !redis) {
      throw new Error('rate-limit: store "redis" needs the top-level "redis.url" in gateway.yaml');
    }
    this.#redis = config.store === 'redis' ? redis : undefined;
    for (const limit of config.limits) {
      const prefix = `${keyPrefix}:${limit.name}`;
      const byTenant = new Map<string, Counter>();
      for (const [tenant, overrides] of Object.entries(config.tenants)) {
        const o = overrides[limit.name];
        if (!o) continue;
        byTenant.set(tenant, this.#counter({
          name: limit.name,
          points: o.points ?? limit.points,
          windowMs: o.duration ?? limit.duration,
        }, prefix));
      }
      this.#counters.set(limit.name, {
        config: limit,
        tools: limit.match.tools ? compileWildcards(limit.match.tools) : undefined,
        base: this.#counter({ name: limit.name, points: limit.points, windowMs: limit.duration }, prefix),
        byTenant,
      });
    }
  }

  #counter(limit: EffectiveLimit, keyPrefix: string): Counter {
    const duration = limit.windowMs / 1000;
    if (!this.#redis) return { limit, primary: new RateLimiterMemory({ points: limit.points, duration, keyPrefix }) };
    return {
      limit,
      primary: new RateLimiterRedis({
        storeClient: this.#redis,
        points: limit.points,
        duration,
        keyPrefix,
        // Fail fast while ioredis reconnects instead of queueing commands for seconds.
        rejectIfRedisNotReady: true,
      }),
      insurance: this.#config.onStoreError === 'insurance'
        ? new RateLimiterMemory({
            points: Math.ceil(limit.points * this.#config.insuranceFraction),
            duration,
            keyPrefix: `insurance:${keyPrefix}`,
          })
        : undefined,
    };
  }

  /** The limits a JSON-RPC request counts against, in configuration order. */
  matching(method: string, tool: string | undefined): LimitConfig[] {
    const out: LimitConfig[] = [];
    for (const { config: l, tools } of this.#counters.values()) {
      if (l.match.method !== undefined && l.match.method !== method) continue;
      if (tools && (method !== 'tools/call' || tool === undefined || !tools(tool))) continue;
      out.push(l);
    }
    return out;
  }

  /** The budget of `limit` that applies to a caller of `tenant`. */
  effective(limit: string, tenant: string | undefined): EffectiveLimit {
    return this.#pick(limit, tenant).limit;
  }

  #pick(limit: string, tenant: string | undefined): Counter {
    const c = this.#counters.get(limit)!;
    return (tenant !== undefined && c.byTenant.get(tenant)) || c.base;
  }

  /** Spends one point of `limit` for `key`. Never rejects: every outcome is a SpendResult. */
  async spend(limitName: string, tenant: string | undefined, key: string): Promise<SpendResult> {
    const counter = this.#pick(limitName, tenant);
    const { limit } = counter;
    try {
      const res = await this.#withTimeout(counter.primary.consume(key));
      return { kind: 'allowed', limit, remaining: res.remainingPoints, resetMs: res.msBeforeNext };
    } catch (err) {
      if (err instanceof RateLimiterRes) return { kind: 'exceeded', limit, retryAfterMs: err.msBeforeNext };
      return this.#onStoreError(counter, key, err);
    }
  }

  async #onStoreError(counter: Counter, key: string, err: unknown): Promise<SpendResult> {
    const { limit } = counter;
    const mode = this.#config.onStoreError;
    const reason = err instanceof Error ? err.message : String(err);
    const degraded = `redis store failed (${reason}); onStoreError: ${mode}`;
    const now = Date.now();
    if (now - (this.#lastStoreErrorLog.get(limit.name) ?? 0) >= STORE_ERROR_LOG_INTERVAL_MS) {
      this.#lastStoreErrorLog.set(limit.name, now);
      this.#log.warn({ code: 'GW_ERR_RATE_LIMIT_STORE', limit: limit.name, onStoreError: mode, err: reason },
        'rate-limit store failed; applying onStoreError');
    }
    if (mode === 'open') return { kind: 'uncounted', limit, degraded };
    if (mode === 'closed' || !counter.insurance) return { kind: 'unavailable', limit, degraded };
    try {
      const res = await counter.insurance.consume(key);
      return { kind: 'allowed', limit, remaining: res.remainingPoints, resetMs: res.msBeforeNext, degraded };
    } catch (insuranceErr) {
      if (insuranceErr instanceof RateLimiterRes) return { kind: 'exceeded', limit, retryAfterMs: insuranceErr.msBeforeNext, degraded };
      return { kind: 'unavailable', limit, degraded };
    }
  }

  /** Bounds a store call: a hung Redis must not hang every request. */
  #withTimeout<T>(p: Promise<T>): Promise<T> {
    if (!this.#redis) return p;
    const ms = this.#config.storeTimeout;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms);
      p.then(
        (v) => { clearTimeout(timer); resolve(v); },
        (e) => { clearTimeout(timer); reject(e); },
      );
    });
  }
}

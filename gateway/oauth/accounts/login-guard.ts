/**
 * Limits password guessing on the login page: so many failed attempts per account and per client
 * address in a window, counted by rate-limiter-flexible in memory (one replica) or in Redis (several
 * replicas share the counts).
 *
 * `allow()` counts the attempt at once rather than waiting for `failed()`: a verification takes ~0.1 s,
 * and an attacker who sent a thousand guesses in parallel would otherwise see every one of them allowed
 * before the first failure was counted. `succeeded()` gives the points back (the account's counter is
 * reset; the address gets its one point back), so what stays counted is exactly the failed attempts.
 * `failed()` after `allow()` therefore has nothing left to count; called without a preceding `allow()`
 * in this process, it counts the failure itself.
 *
 * The per-account limit lets anyone lock an account out for a window by guessing wrong on purpose: the
 * price of stopping a distributed guesser, which no per-address limit can. The window is short for that
 * reason. IPv6 addresses are counted per /64, the block one subscriber usually gets.
 */
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import { duration, int } from '../../../config/units.ts';
import type { LoginGuard } from '../contracts.ts';

const LimitSchema = z.strictObject({
  /** Failed attempts allowed per window; the next one is refused until the window ends. */
  attempts: int().pipe(z.number().min(1)),
  /** Window length (fixed, starting at the first failure), e.g. `15m`; whole seconds, at least 1s. */
  window: duration()
    .pipe(z.number().min(1000, 'at least 1s'))
    .refine((ms) => ms % 1000 === 0, 'whole seconds (the Redis store counts in seconds)'),
});

const FIFTEEN_MINUTES = 15 * 60_000;
const DEFAULTS = {
  perAccount: { attempts: 5, window: FIFTEEN_MINUTES },
  perAddress: { attempts: 20, window: FIFTEEN_MINUTES },
};

/** `authorization.accounts.loginLimits` (or wherever the config composes it). */
export const LoginLimitsSchema = z
  .strictObject({
    /** Failed sign-ins per username, from any address. Default 5 per 15 minutes. */
    perAccount: LimitSchema.default(DEFAULTS.perAccount),
    /** Failed sign-ins per client address (IPv6: per /64), for any username. Default 20 per 15 minutes. */
    perAddress: LimitSchema.default(DEFAULTS.perAddress),
  })
  .default(DEFAULTS);

export type LoginLimits = z.infer<typeof LoginLimitsSchema>;

/** Attempts reserved by `allow()` and not yet settled, per (username, address); bounded. */
const MAX_PENDING = 10_000;

/** The address a counter is kept for: IPv4 as is (also when IPv4-mapped), IPv6 as its /64. */
export function addressKey(address: string): string {
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1];
  if (isIPv4(bare) || !isIPv6(bare)) return bare;
  const [head, tail = ''] = bare.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = bare.includes('::') && tail ? tail.split(':') : [];
  const groups = bare.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** Store keys never hold a raw username: it may be anything a client typed, of any length. */
function accountKey(username: string): string {
  return createHash('sha256').update(username.trim().toLowerCase()).digest('base64url');
}

/** A fixed-window counter: in memory, or in Redis (with a memory stand-in while Redis is down). Also used by ../limits.ts. */
export function limiter(limit: { attempts: number; window: number }, keyPrefix: string, redis: Redis | undefined): RateLimiterAbstract {
  const options = { points: limit.attempts, duration: limit.window / 1000, keyPrefix };
  if (!redis) return new RateLimiterMemory(options);
  return new RateLimiterRedis({
    ...options,
    storeClient: redis,
    // While Redis is down, count in memory instead: closing sign-in (or the endpoints) altogether, or
    // letting requests through uncounted, would both be worse.
    rejectIfRedisNotReady: true,
    insuranceLimiter: new RateLimiterMemory({ ...options, keyPrefix: `insurance:${keyPrefix}` }),
  });
}

export const retryAfter = (res: RateLimiterRes) => Math.max(1, Math.ceil(res.msBeforeNext / 1000));

export function createLoginGuard(cfg: LoginLimits, opts: { redis?: Redis; keyPrefix: string }): LoginGuard {
  const perAccount = limiter(cfg.perAccount, `${opts.keyPrefix}login:account`, opts.redis);
  const perAddress = limiter(cfg.perAddress, `${opts.keyPrefix}login:address`, opts.redis);
  const pending = new Map<string, number>();
  const pendingKey = (account: string, address: string) => `${account} ${address}`;

  const reserve = (key: string) => {
    if (pending.size >= MAX_PENDING && !pending.has(key)) pending.delete(pending.keys().next().value!);
    pending.set(key, (pending.get(key) ?? 0) + 1);
  };
  /** Settles one reservation; false when there was none (failed/succeeded without allow). */
  const settle = (key: string): boolean => {
    const n = pending.get(key);
    if (!n) return false;
    if (n === 1) pending.delete(key);
    else pending.set(key, n - 1);
    return true;
  };

  return {
    async allow(username, address) {
      const account = accountKey(username);
      const addr = addressKey(address);
      // The address first: a client refused by address spends none of the account's attempts, so one
      // blocked address cannot lock out every account it names.
      try {
        await perAddress.consume(addr);
      } catch (err) {
        if (err instanceof RateLimiterRes) return { ok: false, retryAfterSeconds: retryAfter(err) };
        throw err;
      }
      try {
        await perAccount.consume(account);
      } catch (err) {
        // Refused for the account: not an attempt from this address after all.
        await perAddress.reward(addr, 1).catch(() => undefined);
        if (err instanceof RateLimiterRes) return { ok: false, retryAfterSeconds: retryAfter(err) };
        throw err;
      }
      reserve(pendingKey(account, addr));
      return { ok: true };
    },

    async failed(username, address) {
      const account = accountKey(username);
      const addr = addressKey(address);
      if (settle(pendingKey(account, addr))) return;
      // Rejections only say the limit is now reached: the failure is counted either way.
      await Promise.all([
        perAccount.consume(account).catch(ignoreLimit),
        perAddress.consume(addr).catch(ignoreLimit),
      ]);
    },

    async succeeded(username, address) {
      const account = accountKey(username);
      const addr = addressKey(address);
      // The address keeps its failures (one valid account must not reset a guesser's budget); the
      // attempt that just succeeded is given back.
      if (settle(pendingKey(account, addr))) await perAddress.reward(addr, 1);
      await perAccount.delete(account);
    },
  };
}

function ignoreLimit(err: unknown): void {
  if (!(err instanceof RateLimiterRes)) throw err;
}

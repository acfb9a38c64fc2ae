/**
 * Per-address request limits on the authorization server's endpoints that anyone may call without
 * credentials (`authorization.limits`): registration, the authorization request (and the step to the
 * OpenID Connect provider), token and revocation. Each call there costs something: a stored client or
 * pending sign-in, an outbound fetch of a Client ID Metadata Document, a signature. Without a limit one
 * address could fill the store (store.ts bounds each kind, but a full kind refuses or forgets) or make
 * the gateway fetch as many URLs as it names.
 *
 * Counted like the login guard (accounts/login-guard.ts, whose counter and address rule this reuses):
 * fixed windows per address, IPv6 per /64, in memory for one replica or in Redis (keys
 * `<redis.keyPrefix>oauth:limit:<endpoint>:<address>`) when `store: redis`, so replicas share counts.
 *
 * The defaults are generous because one address is often many people: an office behind NAT, and for
 * Claude.ai every user's registrations and token refreshes come from Anthropic's servers. They bound a
 * flood; they are not meant to meter normal use. Kept across reloads with unchanged settings (a reload
 * must not hand every address a fresh budget).
 */
import type { IncomingMessage } from 'node:http';
import type { Redis } from 'ioredis';
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { z } from 'zod';
import { duration, int } from '../../config/units.ts';
import type { SharedServices } from '../contract.ts';
import { addressKey, limiter, retryAfter } from './accounts/login-guard.ts';
import { clientAddress } from './http.ts';
import { RetryLater } from './retry-later.ts';

const RateSchema = z.strictObject({
  /** Requests allowed per window from one address; the next is refused (429) until the window ends. */
  requests: int().pipe(z.number().min(1)),
  /** Window length (fixed, starting at the first request), e.g. `1m`; whole seconds, at least 1s. */
  window: duration()
    .pipe(z.number().min(1000, 'at least 1s'))
    .refine((ms) => ms % 1000 === 0, 'whole seconds (the Redis store counts in seconds)'),
});

const MINUTE = 60_000;
const DEFAULTS = {
  register: { requests: 60, window: 60 * MINUTE },
  authorize: { requests: 60, window: MINUTE },
  token: { requests: 300, window: MINUTE },
  revoke: { requests: 60, window: MINUTE },
};

/** `authorization.limits`. */
export const EndpointLimitsSchema = z
  .strictObject({
    /** `POST /oauth/register` per address. Default 60 per hour. */
    register: RateSchema.default(DEFAULTS.register),
    /** `GET /oauth/authorize` and `GET /oauth/oidc` together, per address. Default 60 per minute. */
    authorize: RateSchema.default(DEFAULTS.authorize),
    /** `POST /oauth/token` per address. Default 300 per minute. */
    token: RateSchema.default(DEFAULTS.token),
    /** `POST /oauth/revoke` per address. Default 60 per minute. */
    revoke: RateSchema.default(DEFAULTS.revoke),
  })
  .default(DEFAULTS);

export type EndpointLimits = z.infer<typeof EndpointLimitsSchema>;
export type LimitedEndpoint = keyof EndpointLimits;

/** What a refusal says is too many. */
const WHAT: Record<LimitedEndpoint, string> = {
  register: 'client registrations',
  authorize: 'sign-in requests',
  token: 'token requests',
  revoke: 'revocation requests',
};

export interface EndpointLimiter {
  /** Counts the request; throws RetryLater (429) when its address is over the endpoint's limit. */
  check(endpoint: LimitedEndpoint, req: IncomingMessage): Promise<void>;
}

export function createEndpointLimiter(cfg: EndpointLimits, opts: { redis?: Redis; keyPrefix: string }): EndpointLimiter {
  const counters = {} as Record<LimitedEndpoint, RateLimiterAbstract>;
  for (const endpoint of Object.keys(WHAT) as LimitedEndpoint[]) {
    const { requests, window } = cfg[endpoint];
    counters[endpoint] = limiter({ attempts: requests, window }, `${opts.keyPrefix}${endpoint}`, opts.redis);
  }
  return {
    async check(endpoint, req) {
      try {
        await counters[endpoint].consume(addressKey(clientAddress(req)));
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) throw err;
        const seconds = retryAfter(err);
        throw new RetryLater(`too many ${WHAT[endpoint]} from this address; retry in ${seconds} s`, seconds, 429);
      }
    },
  };
}

const kept = new WeakMap<SharedServices, { key: string; limiter: EndpointLimiter }>();

/** The gateway's limiter for these settings: the same one (and counts) as before a reload that kept them. */
export function endpointLimiter(cfg: EndpointLimits, store: 'memory' | 'redis', shared: SharedServices): EndpointLimiter {
  const key = JSON.stringify([store, cfg]);
  const was = kept.get(shared);
  if (was?.key === key) return was.limiter;
  const made = createEndpointLimiter(cfg, {
    redis: store === 'redis' ? shared.redis : undefined,
    keyPrefix: `${shared.redisKeyPrefix}oauth:limit:`,
  });
  kept.set(shared, { key, limiter: made });
  return made;
}

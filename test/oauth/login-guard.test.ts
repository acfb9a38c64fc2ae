/**
 * The login guard: failed sign-ins limited per account and per client address, success resetting the
 * account, parallel guesses counted as they start; in memory and in Redis.
 *
 * The Redis part needs Redis on 127.0.0.1:6379: skipped with the reason when none answers, unless
 * REQUIRE_REDIS=1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { addressKey, createLoginGuard, LoginLimitsSchema } from '../../gateway/oauth/accounts/login-guard.ts';
import type { LoginGuard } from '../../gateway/oauth/contracts.ts';
import { redisAvailable } from '../tenant/fixtures.ts';

const REDIS_URL = 'redis://127.0.0.1:6379';

const probed = await redisAvailable();
const redisUp = probed.ok;
const redisSkip = probed.ok ? false : `${probed.reason} (set REQUIRE_REDIS=1 to make this a failure)`;

const limits = LoginLimitsSchema.parse({ perAccount: { attempts: 3, window: '15m' }, perAddress: { attempts: 5, window: '15m' } });

/** One failed sign-in as the authorization endpoint makes it: allow, then failed. */
async function fail(guard: LoginGuard, user: string, address: string): Promise<boolean> {
  const a = await guard.allow(user, address);
  if (!a.ok) return false;
  await guard.failed(user, address);
  return true;
}

/** The behaviour both stores must have; `guard()` makes a fresh guard with its own keys. */
function behaviour(guard: () => LoginGuard) {
  it('refuses an account after its failed attempts, from any address, and says for how long', async () => {
    const g = guard();
    for (let i = 0; i < 3; i++) assert.equal(await fail(g, 'alice', `192.0.2.${i}`), true);
    const refused = await g.allow('Alice', '192.0.2.99');
    assert.equal(refused.ok, false, 'the username is counted case-insensitively, from any address');
    if (!refused.ok) assert.ok(refused.retryAfterSeconds > 0 && refused.retryAfterSeconds <= 900, String(refused.retryAfterSeconds));
    assert.deepEqual(await g.allow('bob', '192.0.2.99'), { ok: true }, 'another account is not affected');
  });

  it('refuses an address after its failed attempts, whatever the usernames, without touching those accounts', async () => {
    const g = guard();
    for (let i = 0; i < 5; i++) assert.equal(await fail(g, `user${i}`, '198.51.100.7'), true);
    const refused = await g.allow('carol', '198.51.100.7');
    assert.equal(refused.ok, false);
    if (!refused.ok) assert.ok(refused.retryAfterSeconds > 0 && refused.retryAfterSeconds <= 900);
    assert.deepEqual(await g.allow('carol', '198.51.100.8'), { ok: true }, 'another address is not affected');
    // carol was refused by address, so that spent none of her attempts: 2 more failures are allowed.
    await g.failed('carol', '198.51.100.8');
    assert.equal(await fail(g, 'carol', '203.0.113.1'), true);
    assert.equal(await fail(g, 'carol', '203.0.113.2'), true);
    assert.equal((await g.allow('carol', '203.0.113.3')).ok, false);
  });

  it('a success resets the account, not the address', async () => {
    const g = guard();
    assert.equal(await fail(g, 'dave', '192.0.2.50'), true);
    assert.equal(await fail(g, 'dave', '192.0.2.50'), true);
    assert.deepEqual(await g.allow('dave', '192.0.2.50'), { ok: true });
    await g.succeeded('dave', '192.0.2.50');
    // The account has its 3 attempts again; the address still holds dave's 2 failures (5 - 2 = 3 left).
    for (let i = 0; i < 3; i++) assert.equal(await fail(g, 'dave', '192.0.2.50'), true);
    assert.equal((await g.allow('dave', '192.0.2.51')).ok, false, 'account used up again');
    assert.equal((await g.allow('erin', '192.0.2.50')).ok, false, 'address used up: 5 failures in all');
  });

  it('counts parallel attempts as they start, so a burst gets no more guesses than the limit', async () => {
    const g = guard();
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => g.allow('frank', `192.0.2.${100 + i}`)));
    assert.equal(answers.filter((a) => a.ok).length, 3);
  });

  it('counts a failure reported without allow()', async () => {
    const g = guard();
    for (let i = 0; i < 3; i++) await g.failed('gina', '192.0.2.200');
    assert.equal((await g.allow('gina', '192.0.2.201')).ok, false);
  });

  it('counts IPv6 clients per /64', async () => {
    const g = guard();
    for (let i = 1; i <= 5; i++) assert.equal(await fail(g, `v6user${i}`, `2001:db8:1:2::${i}`), true);
    assert.equal((await g.allow('v6user9', '2001:db8:1:2:ffff:1:2:3')).ok, false);
    assert.deepEqual(await g.allow('v6user9', '2001:db8:1:3::1'), { ok: true });
  });
}

describe('login guard (memory)', () => {
  behaviour(() => createLoginGuard(limits, { keyPrefix: `test-${randomUUID()}:` }));

  it('has defaults, and explains bad limits', () => {
    assert.deepEqual(LoginLimitsSchema.parse(undefined), {
      perAccount: { attempts: 5, window: 900_000 }, perAddress: { attempts: 20, window: 900_000 },
    });
    assert.deepEqual(LoginLimitsSchema.parse({ perAccount: { attempts: '10', window: '1h' } }).perAccount, { attempts: 10, window: 3_600_000 });
    const bad = LoginLimitsSchema.safeParse({ perAddress: { attempts: 0, window: '1500ms' }, perUser: {} });
    assert.equal(bad.success, false);
    const text = bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    assert.match(text, /perAddress\.attempts/);
    assert.match(text, /perAddress\.window: whole seconds/);
    assert.match(text, /perUser/);
  });

  it('counts in memory while Redis is unreachable (neither closed to everyone nor open to guessing)', async () => {
    // Never connected (lazyConnect, no command ever queued): its status stays "wait", never "ready".
    const down = new Redis('redis://127.0.0.1:9', { lazyConnect: true, enableOfflineQueue: false });
    try {
      const g = createLoginGuard(limits, { redis: down, keyPrefix: `test-${randomUUID()}:` });
      for (let i = 0; i < 3; i++) assert.equal(await fail(g, 'ivan', '192.0.2.1'), true);
      assert.equal((await g.allow('ivan', '192.0.2.2')).ok, false);
    } finally {
      down.disconnect();
    }
  });

  it('keys addresses: IPv4 as is, IPv4-mapped as IPv4, IPv6 by /64', () => {
    assert.equal(addressKey('192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('2001:0db8:0001:0002:0003:0004:0005:0006'), '2001:db8:1:2::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::1'), '0:0:0:0::/64');
    assert.equal(addressKey('unknown'), 'unknown');
  });
});

describe('login guard (Redis)', { skip: redisSkip }, () => {
  const prefix = `mcpgw-test-login-${randomUUID()}:`;
  const redis = redisUp ? new Redis(REDIS_URL, { maxRetriesPerRequest: 1 }) : undefined;
  let n = 0;
  // The guard counts in memory while Redis is not ready yet: wait, so these tests count in Redis.
  before(async () => { await redis?.ping(); });
  after(async () => {
    if (!redis) return;
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  behaviour(() => createLoginGuard(limits, { redis, keyPrefix: `${prefix}${n++}:` }));

  it('shares counts between guards on the same Redis (replicas), under its key prefix', async () => {
    const keyPrefix = `${prefix}shared:`;
    const a = createLoginGuard(limits, { redis, keyPrefix });
    const b = createLoginGuard(limits, { redis, keyPrefix });
    assert.equal(await fail(a, 'hank', '192.0.2.1'), true);
    assert.equal(await fail(b, 'hank', '192.0.2.2'), true);
    assert.equal(await fail(a, 'hank', '192.0.2.3'), true);
    assert.equal((await b.allow('hank', '192.0.2.4')).ok, false);
    const keys = await redis!.keys(`${keyPrefix}*`);
    assert.ok(keys.some((k) => k.startsWith(`${keyPrefix}login:account:`)), keys.join(' '));
    assert.ok(keys.some((k) => k.startsWith(`${keyPrefix}login:address:`)), keys.join(' '));
    assert.ok(keys.every((k) => !k.includes('hank')), 'usernames are hashed in keys');
  });
});

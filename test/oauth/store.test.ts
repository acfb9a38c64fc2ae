/**
 * The authorization server's store: values come back as stored (never shared objects), expire, `take`
 * is single-use, the memory store stays bounded; the Redis store the same, keys under
 * `<prefix>oauth:` (skipped without a Redis on 127.0.0.1:6379).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { memoryStore, redisStore } from '../../gateway/oauth/store.ts';
import type { OAuthStore } from '../../gateway/oauth/contracts.ts';
import { redisAvailable } from '../tenant/fixtures.ts';

function contract(make: () => Promise<{ store: OAuthStore; done(): Promise<void> }>) {
  it('put, get, take once, delete', async () => {
    const { store, done } = await make();
    try {
      const value = { a: 1 };
      await store.put('code', 'k1', value, 60_000);
      value.a = 2;
      assert.deepEqual(await store.get('code', 'k1'), { a: 1 }, 'a copy was stored');
      assert.equal(await store.get('pending', 'k1'), undefined, 'kinds are separate');
      assert.deepEqual(await store.take('code', 'k1'), { a: 1 });
      assert.equal(await store.take('code', 'k1'), undefined, 'single use');
      await store.put('code', 'k2', 'x', 60_000);
      await store.delete('code', 'k2');
      assert.equal(await store.get('code', 'k2'), undefined);
    } finally {
      await done();
    }
  });
}

describe('memory store', () => {
  contract(async () => ({ store: memoryStore(), done: async () => {} }));

  it('expires entries and stays bounded, oldest first', async () => {
    let now = 0;
    const store = memoryStore({ maxEntries: 3, now: () => now });
    await store.put('k', 'a', 1, 1_000);
    now = 1_000;
    assert.equal(await store.get('k', 'a'), undefined);
    for (const id of ['b', 'c', 'd', 'e']) await store.put('k', id, id, 10_000);
    assert.equal(store.size, 3);
    assert.equal(await store.get('k', 'b'), undefined, 'the oldest went');
    assert.equal(await store.get('k', 'e'), 'e');
  });
});

const redis = await redisAvailable();
describe('redis store', { skip: redis.ok ? false : redis.reason }, () => {
  contract(async () => {
    const { Redis } = await import('ioredis');
    const client = new Redis({ host: '127.0.0.1', port: 6379 });
    const prefix = `mcpgw-test-${process.pid}-${Date.now()}:`;
    return {
      store: redisStore(client, prefix),
      async done() {
        assert.deepEqual(await client.keys(`${prefix}*`), [], 'nothing left behind');
        client.disconnect();
      },
    };
  });
});

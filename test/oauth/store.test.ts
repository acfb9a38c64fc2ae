/**
 * The authorization server's store: values come back as stored (never shared objects), expire, `take`
 * is single-use; the memory store bounds each kind on its own (a flood of registrations or sign-ins
 * cannot evict a client or a refresh family); the Redis store the same, keys under `<prefix>oauth:`,
 * registered clients counted (skipped without a Redis on 127.0.0.1:6379).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { clientsConfigDefault } from '../../gateway/oauth/clients/config.ts';
import { DynamicClients } from '../../gateway/oauth/clients/dynamic.ts';
import type { OAuthStore } from '../../gateway/oauth/contracts.ts';
import { Grants } from '../../gateway/oauth/grants.ts';
import { loadSigningKeys } from '../../gateway/oauth/signing.ts';
import { CAPACITY, memoryStore, redisStore, StoreFull, type KindCapacity } from '../../gateway/oauth/store.ts';
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

  it('expires entries; a full kind that evicts loses only its own oldest entries', async () => {
    let now = 0;
    const store = memoryStore({ capacity: { pending: { max: 3, whenFull: 'evict-oldest' } }, now: () => now });
    await store.put('pending', 'a', 1, 1_000);
    now = 1_000;
    assert.equal(await store.get('pending', 'a'), undefined, 'expired');
    await store.put('family', 'f', 'kept', 10_000);
    for (const id of ['b', 'c', 'd', 'e']) await store.put('pending', id, id, 10_000);
    assert.ok(store.sizeOf('pending') <= 3);
    assert.equal(await store.get('pending', 'b'), undefined, 'the oldest pending went');
    assert.equal(await store.get('pending', 'e'), 'e');
    assert.equal(await store.get('family', 'f'), 'kept', 'another kind was not touched');
  });

  it('a full kind that refuses keeps its entries, renews them, and says when to retry', async () => {
    let now = 0;
    const store = memoryStore({ capacity: { client: { max: 2, whenFull: 'refuse' } }, now: () => now });
    await store.put('client', 'a', 'a', 10_000);
    now = 4_000;
    await store.put('client', 'b', 'b', 10_000);
    const refused = await store.put('client', 'c', 'c', 10_000).then(() => undefined, (err: unknown) => err);
    assert.ok(refused instanceof StoreFull, `refused, not ${String(refused)}`);
    assert.equal(refused.status, 503);
    assert.equal(refused.error, 'temporarily_unavailable');
    assert.equal(refused.retryAfterSeconds, 6, 'until the oldest expires');
    assert.equal(await store.get('client', 'a'), 'a');
    await store.put('client', 'a', 'a2', 10_000); // a renewal takes no new room
    assert.equal(await store.get('client', 'a'), 'a2');
    now = 14_001; // b expired, a renewed at 4s lives until 14s: one place free
    await store.put('client', 'c', 'c', 10_000);
    assert.equal(await store.get('client', 'c'), 'c');
  });
});

/**
 * The floods the capacities are for, with the real registration and grant code and the default sizes.
 * Before, every kind shared one bound of 100,000 entries, evicted oldest first: the flood of pending
 * sign-ins below evicted the earliest client and its refresh family, and registrations never stopped.
 */
describe('memory store under a flood (default capacities)', () => {
  const REDIRECT = 'http://127.0.0.1:9/cb';

  async function signedIn(store: OAuthStore) {
    const clients = new DynamicClients(clientsConfigDefault.dynamicRegistration, store);
    const keys = await loadSigningKeys({ alg: 'EdDSA' }, await mkdtemp(path.join(tmpdir(), 'mcpgw-store-')));
    const grants = new Grants({
      store, keys, revoke: async () => {}, log: pino({ level: 'silent' }),
      settings: { accessTokenTtl: 3_600_000, refreshTokenTtl: 30 * 86_400_000, codeTtl: 60_000, tenantClaim: 'tenant_id' },
    });
    const { client } = await clients.register({ redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' });
    const code = await grants.issueCode({
      clientId: client.clientId, redirectUri: REDIRECT, codeChallenge: 'c'.repeat(43), resource: 'https://mcp.test/mcp', scopes: [],
      account: { subject: 'alice', tenant: 'acme', scopes: [], source: 'users-file' }, issuer: 'https://as.test', refresh: true,
    });
    const first = await grants.redeemCode(code, () => {});
    return { clients, grants, client, refreshToken: first.refresh_token! };
  }

  it('a registration flood is refused beyond the client capacity and evicts neither a client nor a refresh family', async () => {
    const store = memoryStore();
    const { clients, grants, client, refreshToken } = await signedIn(store);
    let accepted = 1;
    let refused: unknown;
    while (accepted <= CAPACITY.client.max) {
      try {
        await clients.register({ redirect_uris: [`http://127.0.0.1:9/flood${accepted}`] });
        accepted++;
      } catch (err) {
        refused = err;
        break;
      }
    }
    assert.equal(accepted, CAPACITY.client.max, 'registrations stop at the capacity');
    assert.ok(refused instanceof StoreFull && refused.status === 503, `a full registry answers 503 temporarily_unavailable, not ${String(refused)}`);
    assert.equal((await clients.resolve(client.clientId)).clientId, client.clientId, 'the earlier client is still known');
    const next = await grants.refresh(refreshToken, client.clientId, {});
    assert.ok(next.access_token && next.refresh_token, 'and can still refresh');
  });

  it('a flood of pending sign-ins evicts only older pending sign-ins, never a refresh family', async () => {
    const store = memoryStore();
    const { grants, client, refreshToken } = await signedIn(store);
    for (let i = 0; i <= 100_000; i++) await store.put('pending', `p${i}`, { clientId: client.clientId, redirectUri: REDIRECT }, 600_000);
    const next = await grants.refresh(refreshToken, client.clientId, {});
    assert.ok(next.access_token && next.refresh_token, 'the signed-in client can still refresh');
    assert.ok(store.sizeOf('pending') <= CAPACITY.pending.max, 'pending sign-ins stay within their capacity');
  });
});

const redis = await redisAvailable();
describe('redis store', { skip: redis.ok ? false : redis.reason }, () => {
  async function connect(capacity?: Record<string, KindCapacity>) {
    const { Redis } = await import('ioredis');
    const client = new Redis({ host: '127.0.0.1', port: 6379 });
    const prefix = `mcpgw-test-${process.pid}-${Date.now()}:`;
    return {
      client,
      store: redisStore(client, prefix, { capacity }),
      async done() {
        assert.deepEqual(await client.keys(`${prefix}*`), [], 'nothing left behind');
        client.disconnect();
      },
    };
  }
  contract(() => connect());

  it('counts registered clients: a full registry refuses new ones, keeps and renews the others', async () => {
    const { store, done } = await connect({ client: { max: 2, whenFull: 'refuse' } });
    try {
      await store.put('client', 'a', 'a', 60_000);
      await store.put('client', 'b', 'b', 60_000);
      const refused = await store.put('client', 'c', 'c', 60_000).then(() => undefined, (err: unknown) => err);
      assert.ok(refused instanceof StoreFull && refused.status === 503 && refused.retryAfterSeconds > 0, `refused, not ${String(refused)}`);
      await store.put('client', 'a', 'a2', 60_000);
      assert.equal(await store.get('client', 'a'), 'a2', 'a renewal is not refused');
      assert.equal(await store.get('client', 'c'), undefined);
      await store.delete('client', 'b');
      await store.put('client', 'c', 'c', 60_000);
      assert.equal(await store.take('client', 'c'), 'c', 'a deleted client makes room');
      await store.delete('client', 'a');
    } finally {
      await done();
    }
  });
});

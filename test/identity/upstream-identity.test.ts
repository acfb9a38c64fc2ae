/**
 * Signed identity headers: what the gateway adds for an upstream with `identity:` and what the upstream
 * checks.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signIdentityHeaders, verifyIdentityHeaders } from '../../gateway/upstream-identity.ts';

const secret = 'k'.repeat(32);
const principal = { tenant: 'acme', subject: 'alice@example.com/ü\nnewline' };
const now = 1_750_000_000_000;

describe('upstream identity headers', () => {
  it('round-trips tenant and subject (any characters) and only produces valid header values', () => {
    const headers = signIdentityHeaders(principal, { secret }, now);
    assert.deepEqual(Object.keys(headers).sort(), ['x-mcp-gateway-signature', 'x-mcp-gateway-subject', 'x-mcp-gateway-tenant', 'x-mcp-gateway-timestamp']);
    for (const value of Object.values(headers)) assert.match(value, /^[\x21-\x7e]+$/);
    assert.deepEqual(verifyIdentityHeaders(headers, secret, { nowMs: now + 1000 }), { ok: true, tenant: 'acme', subject: principal.subject, timestampMs: now });
    // A Fetch Headers object works too.
    assert.equal(verifyIdentityHeaders(new Headers(headers), secret, { nowMs: now }).ok, true);
  });

  it('uses the configured prefix', () => {
    const headers = signIdentityHeaders(principal, { secret, headerPrefix: 'X-Gw-' }, now);
    assert.ok('x-gw-tenant' in headers);
    assert.equal(verifyIdentityHeaders(headers, secret, { nowMs: now, headerPrefix: 'x-gw-' }).ok, true);
    assert.deepEqual(verifyIdentityHeaders(headers, secret, { nowMs: now }), { ok: false, reason: 'missing' });
  });

  it('refuses a changed tenant, subject or timestamp, another secret, and replays outside the window', () => {
    const headers = signIdentityHeaders(principal, { secret }, now);
    const changed = (k: string, v: string) => verifyIdentityHeaders({ ...headers, [k]: v }, secret, { nowMs: now });
    assert.deepEqual(changed('x-mcp-gateway-tenant', 'globex'), { ok: false, reason: 'bad-signature' });
    assert.deepEqual(changed('x-mcp-gateway-subject', 'bob'), { ok: false, reason: 'bad-signature' });
    assert.deepEqual(changed('x-mcp-gateway-timestamp', String(now + 1)), { ok: false, reason: 'bad-signature' });
    assert.deepEqual(changed('x-mcp-gateway-timestamp', 'soon'), { ok: false, reason: 'malformed' });
    assert.deepEqual(verifyIdentityHeaders(headers, 'x'.repeat(32), { nowMs: now }), { ok: false, reason: 'bad-signature' });
    assert.deepEqual(verifyIdentityHeaders(headers, secret, { nowMs: now + 60_001 }), { ok: false, reason: 'expired' });
    assert.deepEqual(verifyIdentityHeaders(headers, secret, { nowMs: now - 60_001 }), { ok: false, reason: 'expired' });
    assert.equal(verifyIdentityHeaders(headers, secret, { nowMs: now + 300_000, maxAgeMs: 600_000 }).ok, true);
    assert.deepEqual(verifyIdentityHeaders({ ...headers, 'x-mcp-gateway-tenant': ['acme', 'acme'] }, secret, { nowMs: now }), { ok: false, reason: 'missing' });
  });
});

/**
 * Redirect-URI matching: exact strings, except the port of a loopback http: redirect (RFC 8252 §7.3).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redirectUriMatches } from '../../gateway/oauth/clients/redirect-uri.ts';

describe('redirectUriMatches', () => {
  const table: Array<[string[], string, boolean]> = [
    [['https://claude.ai/api/mcp/auth_callback'], 'https://claude.ai/api/mcp/auth_callback', true],
    [['https://claude.ai/api/mcp/auth_callback'], 'https://claude.ai/api/mcp/auth_callback/', false],
    [['https://claude.ai/api/mcp/auth_callback'], 'https://CLAUDE.ai/api/mcp/auth_callback', false],
    [['https://claude.ai/api/mcp/auth_callback'], 'https://claude.ai:8443/api/mcp/auth_callback', false],
    [['https://app.example/cb'], 'https://app.example/cb?x=1', false],
    [['https://app.example/cb'], 'https://app.example/cb/../cb', false],
    [['cursor://anysphere.cursor-retrieval/oauth/callback'], 'cursor://anysphere.cursor-retrieval/oauth/callback', true],
    [['cursor://anysphere.cursor-retrieval/oauth/callback'], 'cursor://anysphere.cursor-retrieval/oauth/other', false],
    // RFC 8252 §7.3: any port on a loopback redirect; the rest exact.
    [['http://127.0.0.1:3000/callback'], 'http://127.0.0.1:54321/callback', true],
    [['http://127.0.0.1/callback'], 'http://127.0.0.1:54321/callback', true],
    [['http://127.0.0.1:3000/callback'], 'http://127.0.0.1/callback', true],
    [['http://[::1]:3000/cb'], 'http://[::1]:61000/cb', true],
    [['http://localhost:3000/callback'], 'http://localhost:49152/callback', true],
    [['http://127.0.0.1:33418'], 'http://127.0.0.1:40000/', true],
    [['http://127.0.0.1:33418'], 'http://127.0.0.1:40000', true],
    [['http://127.0.0.1:3000/callback'], 'http://127.0.0.1:3000/other', false],
    [['http://127.0.0.1:3000/callback'], 'http://127.0.0.1:3000/callback?x=1', false],
    [['http://127.0.0.1:3000/callback?a=1'], 'http://127.0.0.1:4000/callback?a=1', true],
    [['http://127.0.0.1:3000/callback'], 'http://localhost:3000/callback', false],
    [['http://localhost:3000/callback'], 'http://127.0.0.1:3000/callback', false],
    [['http://127.0.0.1:3000/callback'], 'http://127.0.0.1:3000/callback#x', false],
    [['http://127.0.0.1:3000/callback'], 'http://127.0.0.1:4000@evil.example/callback', false],
    [['http://127.0.0.1:3000/callback'], 'http://127.0.0.1.evil.example:4000/callback', false],
    [['http://127.0.0.1:3000/callback'], 'https://127.0.0.1:4000/callback', false],
    [['http://127.0.0.1:3000/callback'], 'http://LOCALHOST:4000/callback', false],
    [['https://vscode.dev/redirect'], 'https://vscode.dev:444/redirect', false],
  ];
  for (const [registered, requested, expected] of table) {
    it(`${requested} ${expected ? 'matches' : 'does not match'} ${registered.join(', ')}`, () => {
      assert.equal(redirectUriMatches(registered, requested), expected);
    });
  }
});

/**
 * `DELETE /admin/sessions/{id}` on a federation's session: the federation has no address to send a
 * DELETE to, so the gateway hands it the DELETE in process, and the federation ends its members'
 * sessions as a client's own DELETE would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV } from '../helpers/hs256-auth.ts';
import { waitFor } from '../helpers/wait.ts';
import { federationYaml, startMembers, tokenFor, type Members } from './fixtures.ts';
import { openRawSession, rawRequest } from './fixtures-raw.ts';

const ADMIN_TOKEN = 'admin-token-for-federation-tests';

describe('the admin API ends a federation session at its members', () => {
  let m: Members;
  let tg: TestGateway;
  before(async () => {
    m = await startMembers();
    tg = await startTestGateway(`${federationYaml(m, { members: { everything: {} } })}admin: { token: ${ADMIN_TOKEN} }\n`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await tg?.close();
    await m?.close();
  });

  it('sends the member a DELETE for its session', async () => {
    const s = await openRawSession(`${tg.url('main')}/mcp`, await tokenFor('acme'));
    const call = await rawRequest(s, 'tools/call', { name: 'echo', arguments: { message: 'hello' } });
    assert.ok(call.reply && 'result' in call.reply, `the call went through: ${call.text}`);
    const memberSession = m.everythingWire.requests.find((r) => typeof r.headers['mcp-session-id'] === 'string')?.headers['mcp-session-id'];
    assert.ok(memberSession, 'the federation opened a session at the member');

    const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };
    const listed = (await (await fetch(`${tg.adminUrl()}/admin/sessions`, { headers: admin })).json()) as { sessions: Array<{ id: string; upstream: string }> };
    assert.deepEqual(listed.sessions.map((x) => [x.id, x.upstream]), [[s.sessionId, 'workspace']]);
    const ended = await fetch(`${tg.adminUrl()}/admin/sessions/${encodeURIComponent(s.sessionId)}`, { method: 'DELETE', headers: admin });
    assert.equal(ended.status, 200);

    await waitFor(
      () => m.everythingWire.requests.some((r) => r.method === 'DELETE' && r.headers['mcp-session-id'] === memberSession),
      'the member to receive a DELETE for its session',
    );
  });
});

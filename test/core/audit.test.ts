/**
 * The audit plugin writing to a file, as operators run it, in front of server-everything with the
 * official SDK client: one line per exchange and per JSON-RPC message, batched but never held longer
 * than `flushInterval`, no credential in it, and what an auditor asks of each line: who (principal,
 * address, user agent, clientInfo), what (tool, resource, prompt) and how it ended (a tool's
 * `isError`, a JSON-RPC error's code, a refusal's code, plugin and message).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { authPluginItems, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import type { JSONRPCMessage } from '../../gateway/contract.ts';
import { callFields, noteAnswer, noteRequest } from '../../plugins/audit-calls.ts';
import { call, exchange, outcome, result } from '../tenant/fixtures.ts';

type Line = Record<string, unknown>;

describe('audit to a file', () => {
  let upstream: RunningUpstream;
  let gw: TestGateway;
  let token: string;
  before(async () => {
    upstream = await startEverything('streamableHttp');
    token = await tokenFor('acme', { sub: 'alice' });
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { everything: { url: ${upstream.url}/mcp } }
routes:
  - listener: main
    path: /mcp
    upstream: everything
    plugins: [{ type: audit, destination: logs/audit.log, flushInterval: 50ms }, ${authPluginItems(['header', 'query'])}, { type: tool-policy, default: { deny: [get-env] } }]
  - listener: main
    path: /behind-proxy
    upstream: everything
    plugins: [{ type: audit, destination: logs/audit.log, flushInterval: 50ms, trustedProxies: [127.0.0.1, '10.0.0.0/8'] }]
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  const readLines = async () => {
    const text = await readFile(path.join(gw.dir, 'logs/audit.log'), 'utf8').catch(() => '');
    // Whole lines only: a batch may be caught half-written.
    return { text, lines: text.split('\n').slice(0, -1).filter(Boolean).map((l) => JSON.parse(l) as Line) };
  };
  /** Polls the file until `pick` finds what it looks for (lines are flushed every 50ms; the deadline is for a loaded machine). */
  const waitFor = async <T>(pick: (lines: Line[]) => T | undefined, what: string): Promise<T> => {
    const until = Date.now() + 15_000;
    for (;;) {
      const found = pick((await readLines()).lines);
      if (found !== undefined) return found;
      if (Date.now() > until) throw new Error(`no ${what} in the audit file:\n${(await readLines()).text}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  /** The exchange line of the exchange that carried the request matching `match`. */
  const exchangeOf = (match: (l: Line) => boolean, what: string) => waitFor((lines) => {
    const request = lines.find((l) => l.kind === 'message' && l.direction === 'request' && match(l));
    return request && lines.find((l) => l.kind === 'exchange' && l.exchange === request.exchange);
  }, what);

  test('exchange and message lines reach the file within the flush interval, without the token', async () => {
    const client = await connectClient(`${gw.url()}/mcp?token=${token}`, { name: 'audited-agent' });
    await client.callTool({ name: 'echo', arguments: { message: 'audited' } });
    await client.close();
    const call = await waitFor((lines) => lines.find((l) => l.kind === 'message' && l.direction === 'request' && l.tool === 'echo'), 'tools/call line');
    assert.equal(call.rpcMethod, 'tools/call');
    assert.equal(call.tenant, 'acme');
    assert.equal(call.sub, 'alice');
    // The answer's line may be in a later batch than the request's: wait for it too.
    const answer = await waitFor((lines) => lines.find((l) => l.kind === 'message' && l.direction === 'response' && l.rpcId === call.rpcId && l.exchange === call.exchange), 'response line');
    assert.equal(answer?.tool, 'echo', 'the response line names the tool of the request it answers');
    assert.equal(answer?.outcome, 'ok');
    const init = await exchangeOf((l) => l.rpcMethod === 'initialize', 'initialize exchange');
    assert.deepEqual(init.client, { name: 'audited-agent', version: '1.0.0' }, 'the clientInfo the client sent');
    assert.equal(typeof init.protocolVersion, 'string');
    assert.equal(init.remoteAddress, '127.0.0.1');
    assert.equal(typeof init.userAgent, 'string');
    assert.equal(init.forwardedFor, undefined);
    assert.equal(init.path, '/mcp');
    assert.equal(typeof init.latencyMs, 'number');
    const { text } = await readLines();
    assert.ok(!text.includes(token), 'the URL token never reaches the audit file');
    assert.ok(!text.includes('token='), 'nor does the query parameter');
  });

  test('each call says what it named and how it ended: ok, a tool error, a JSON-RPC error, a refusal', async () => {
    const client = await connectClient(`${gw.url()}/mcp`, { bearer: token });
    await client.callTool({ name: 'echo', arguments: { message: 'fine' } });
    const failed = await client.callTool({ name: 'get-sum', arguments: { a: 'not a number', b: 2 } });
    assert.equal(failed.isError, true);
    await assert.rejects(client.getPrompt({ name: 'no-such-prompt' }));
    await client.readResource({ uri: 'demo://resource/static/document/architecture.md' });
    await assert.rejects(client.callTool({ name: 'get-env', arguments: {} }));
    await client.close();

    const ok = await exchangeOf((l) => l.tool === 'echo' && l.sub === 'alice' && l.session !== undefined, 'echo exchange');
    assert.equal(ok.rpcMethod, 'tools/call');
    assert.equal(ok.outcome, 'ok');
    assert.equal(ok.error, undefined, 'an SSE answer that delivered its result is a normal completion');

    const toolError = await exchangeOf((l) => l.tool === 'get-sum', 'get-sum exchange');
    assert.equal(toolError.status, 200, 'HTTP and JSON-RPC both say success...');
    assert.equal(toolError.outcome, 'tool_error', '...the audit line does not');
    const { lines } = await readLines();
    const toolErrorAnswer = lines.find((l) => l.exchange === toolError.exchange && l.direction === 'response');
    assert.equal(toolErrorAnswer?.outcome, 'tool_error');

    const rpcError = await exchangeOf((l) => l.prompt === 'no-such-prompt', 'prompts/get exchange');
    assert.equal(rpcError.rpcMethod, 'prompts/get');
    assert.equal(rpcError.outcome, 'error');
    assert.deepEqual(rpcError.rpcError, { code: -32602 });

    const resource = await exchangeOf((l) => l.rpcMethod === 'resources/read', 'resources/read exchange');
    assert.equal(resource.resource, 'demo://resource/static/document/architecture.md');
    assert.equal(resource.outcome, 'ok');

    const refused = await exchangeOf((l) => l.tool === 'get-env', 'get-env exchange');
    assert.equal(refused.outcome, 'refused');
    assert.equal(refused.refusal, 'GW_ERR_TOOL_DENIED');
    assert.equal(refused.refusedBy, 'tool-policy');
    assert.match(String(refused.refusalMessage), /get-env/);
    const [why] = refused.messageRefusals as Line[];
    assert.equal(why.plugin, 'tool-policy');
    assert.equal(why.code, 'GW_ERR_TOOL_DENIED');
    assert.match(String(why.message), /get-env/);
  });

  test('an exchange refused before any message says by whom and why', async () => {
    const res = await fetch(`${gw.url()}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'user-agent': 'curl/8.0' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    assert.equal(res.status, 401);
    const line = await waitFor((lines) => lines.find((l) => l.kind === 'exchange' && l.status === 401 && l.userAgent === 'curl/8.0'), '401 line');
    assert.match(String(line.refusal), /^GW_ERR_/);
    assert.equal(typeof line.refusedBy, 'string');
    assert.ok(String(line.refusalMessage).length > 0);
  });

  test('X-Forwarded-For is an address only when a trusted proxy sent it', async () => {
    const post = (route: string, headers: Record<string, string>) => fetch(`${gw.url()}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'behind-proxy', version: '1' } } }),
    }).then((r) => r.body?.cancel());
    // The trusted peer (127.0.0.1) and a trusted hop (10.1.2.3) are skipped: the client is the first other.
    await post('/behind-proxy', { 'x-forwarded-for': '198.51.100.9, 203.0.113.7, 10.1.2.3' });
    const trusted = await waitFor((lines) => lines.find((l) => l.kind === 'exchange' && l.route === 'main/behind-proxy'), 'trusted line');
    assert.equal(trusted.forwardedFor, '203.0.113.7');
    assert.equal(trusted.remoteAddress, '127.0.0.1');
    // Without trustedProxies the header is anybody's text.
    await post('/mcp', { 'x-forwarded-for': '203.0.113.66', authorization: `Bearer ${token}` });
    const untrusted = await waitFor((lines) => lines.find((l) => l.kind === 'exchange' && l.route === 'main/mcp' && (l.client as Line | undefined)?.name === 'behind-proxy'), 'untrusted line');
    assert.equal(untrusted.forwardedFor, undefined);
    assert.ok(!(await readLines()).text.includes('203.0.113.66'));
  });
});

test('a server request on the stream with a client call\'s id does not answer that call', () => {
  const x = exchange();
  const request = call('echo');
  noteRequest(x, request);
  const id = (request as { id: number }).id;
  const serverRequest = { jsonrpc: '2.0', id, method: 'sampling/createMessage', params: {} } as JSONRPCMessage;
  assert.equal(noteAnswer(x, serverRequest), undefined, 'a request is no answer');
  assert.equal(callFields(x, outcome()).outcome, 'unanswered');
  assert.deepEqual(noteAnswer(x, result(request, { content: [], isError: true })), { outcome: 'tool_error' });
  assert.equal(callFields(x, outcome()).outcome, 'tool_error');
});

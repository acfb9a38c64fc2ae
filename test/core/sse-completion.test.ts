/**
 * When an SSE answer counts as complete (Outcome.error, which the audit's exchange line shows): a
 * client hanging up is "the client went away" only when it left before its answers. A GET stream has
 * no last message, and a POST's stream that delivered every answer is done even if the client closes it
 * before the upstream does (the SDK client, `client.close()` right after its last call).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/recording-upstream.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';

type Line = Record<string, unknown>;

describe('SSE answers: complete, or the client left early', () => {
  let everything: RunningUpstream;
  let held: RecordingUpstream;
  let gw: TestGateway;
  before(async () => {
    everything = await startEverything('streamableHttp');
    // Answers a tools/call with its result as an SSE event and keeps the stream open afterwards.
    held = await startRecordingUpstream((req) => {
      const id = (req.json as { id?: unknown } | undefined)?.id;
      return { kind: 'sse', keepOpen: true, events: [{ data: JSON.stringify({ jsonrpc: '2.0', id, result: { content: [] } }) }] };
    });
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { everything: { url: ${everything.url}/mcp }, held: { url: ${held.url}/mcp } }
routes:
  - { listener: main, path: /mcp, upstream: everything, plugins: [{ type: audit, destination: audit.log, flushInterval: 50ms }] }
  - { listener: main, path: /held, upstream: held, plugins: [{ type: audit, destination: audit.log, flushInterval: 50ms }] }
`);
  });
  after(async () => {
    await gw?.close();
    await everything?.close();
    await held?.close();
  });

  const lines = async () => (await readFile(path.join(gw.dir, 'audit.log'), 'utf8').catch(() => ''))
    .split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
  const waitFor = async (pick: (all: Line[]) => Line | undefined, what: string): Promise<Line> => {
    const until = Date.now() + 10_000;
    for (;;) {
      const found = pick(await lines());
      if (found) return found;
      if (Date.now() > until) throw new Error(`no ${what}:\n${JSON.stringify(await lines(), null, 1)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const exchangeOf = (match: (l: Line) => boolean, what: string) => waitFor((all) => {
    const request = all.find((l) => l.kind === 'message' && l.direction === 'request' && match(l));
    return request && all.find((l) => l.kind === 'exchange' && l.exchange === request.exchange);
  }, what);

  test('an SDK client that closes after its tool call: the call and its GET stream both completed', async () => {
    const client = await connectClient(`${gw.url()}/mcp`, { name: 'closes-at-once' });
    await client.callTool({ name: 'echo', arguments: { message: 'complete' } });
    await client.close();
    const call = await exchangeOf((l) => l.tool === 'echo', 'echo exchange');
    assert.equal(call.outcome, 'ok');
    assert.equal(call.error, undefined);
    // The client's listening stream ends when the client closes it: that is how a GET stream ends.
    const stream = await waitFor((all) => all.find((l) => l.kind === 'exchange' && l.method === 'GET' && l.session === call.session), 'GET stream line');
    assert.equal(stream.status, 200);
    assert.equal(stream.error, undefined);
  });

  test('a POST stream that delivered its answer is complete though the upstream had not ended it', async () => {
    const ac = new AbortController();
    const res = await fetch(`${gw.url()}/held`, {
      method: 'POST',
      signal: ac.signal,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'held-tool', arguments: {} } }),
    });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('"result"')) text += new TextDecoder().decode((await reader.read()).value);
    ac.abort(); // as the SDK client does on close(): it has its answer
    const line = await exchangeOf((l) => l.tool === 'held-tool', 'held-tool exchange');
    assert.equal(line.outcome, 'ok');
    assert.equal(line.error, undefined);
  });

  test('a client that leaves before its answer is recorded as gone, the call unanswered', async () => {
    const client = await connectClient(`${gw.url()}/mcp`, { name: 'leaves-early' });
    let closed: Promise<void> | undefined;
    await new Promise<void>((resolve) => {
      client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 20, steps: 20 } }, undefined, {
        onprogress: () => { closed ??= client.close(); resolve(); },
      }).catch(() => undefined);
    });
    await closed;
    const line = await exchangeOf((l) => l.tool === 'trigger-long-running-operation', 'long-running exchange');
    assert.match(String(line.error), /went away/);
    assert.equal(line.outcome, 'unanswered');
  });
});

/**
 * Large messages are decoded and encoded on a worker thread: the results must be exactly what the
 * inline codec gives, and large answers through a route whose plugins rewrite them must arrive whole.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { decodeJson, encodeJson } from '../../gateway/messages/json-codec.ts';
import { decode, encode, OFFLOAD_MIN_CHARS, stopOffload } from '../../gateway/messages/offload.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startRecordingUpstream } from '../helpers/recording-upstream.ts';

const MISBEHAVING = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/plugins/misbehaving.ts');

after(() => stopOffload());

const bigMessage = (id: number) => ({
  jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'row "a"\\n\u00e9\u65e5'.repeat(Math.ceil(OFFLOAD_MIN_CHARS / 10)) }] },
});

test('the worker decodes and encodes exactly as the inline codec does', async () => {
  const text = JSON.stringify([bigMessage(1), bigMessage(2)]);
  assert.ok(text.length >= OFFLOAD_MIN_CHARS);
  assert.deepEqual(await decode(text), decodeJson(text));
  const values = [bigMessage(3)];
  assert.equal(await encode(values, false, OFFLOAD_MIN_CHARS), encodeJson(values, false));
  const deep = `{"a":${'['.repeat(OFFLOAD_MIN_CHARS)}${']'.repeat(OFFLOAD_MIN_CHARS)}}`;
  assert.equal((await decode(deep)).ok, false, 'the depth cap holds on the worker too');
  assert.equal(((await decode(`${text}x`)) as { reason?: string }).reason, 'parse');
});

test('large answers a plugin rewrites arrive whole, as JSON and as SSE', async () => {
  const up = await startRecordingUpstream((rec) => {
    const id = (rec.json as { id: number }).id;
    const body = bigMessage(id);
    return rec.path === '/sse' ? { kind: 'sse', events: [{ data: JSON.stringify(body) }] } : { kind: 'json', body };
  });
  const gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  up: { url: ${up.url} }
routes:
  - { listener: main, path: /mcp, upstream: up, maxResponseBytes: 32mb, plugins: [{ type: ${MISBEHAVING}, mark: true }] }
`);
  try {
    for (const p of ['/mcp/json', '/mcp/sse']) {
      const res = await fetch(gw.url() + p, {
        method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'big' } }),
      });
      const text = await res.text();
      const json = p.endsWith('sse') ? /^data: (.*)$/m.exec(text)![1] : text;
      const answer = JSON.parse(json) as { id: number; result: { marked: boolean; content: Array<{ text: string }> } };
      assert.equal(answer.id, 7, p);
      assert.equal(answer.result.marked, true, `${p}: rewritten by the plugin`);
      assert.equal(answer.result.content[0].text, bigMessage(7).result.content[0].text, `${p}: content intact`);
    }
  } finally {
    await gw.close();
    await up.close();
  }
});

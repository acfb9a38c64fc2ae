/**
 * The SSE codec against a reference framer that sees the whole stream at once: whatever the chunking,
 * the relay must emit the same events, byte for byte, and know when it is between events.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SseFramer } from '../../gateway/messages/sse-codec.ts';

/** Events of a complete stream: each ends after a blank line (`\r\n`, `\r` or `\n` terminators). */
function reference(text: string): { events: string[]; rest: string } {
  const events: string[] = [];
  let start = 0;
  let lineStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== '\r' && c !== '\n') {
      lineStart = false;
      continue;
    }
    if (c === '\r' && text[i + 1] === '\n') i++;
    if (lineStart) {
      events.push(text.slice(start, i + 1));
      start = i + 1;
    }
    lineStart = true;
  }
  return { events, rest: text.slice(start) };
}

const PIECES = ['data: a', '\n', '\r\n', '\r', 'event: x', ': comment', 'id: 7', 'data: {"é":"ü"}', 'retry: 5'];

function randomStream(seed: number): string {
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  let s = 'data: first\n';
  const k = 1 + Math.floor(rnd() * 40);
  for (let i = 0; i < k; i++) s += PIECES[Math.floor(rnd() * PIECES.length)];
  return s;
}

function chunks(buf: Buffer, seed: number): Buffer[] {
  const out: Buffer[] = [];
  let x = seed;
  for (let p = 0; p < buf.length;) {
    x = (x * 48271) % 2147483647;
    const q = Math.min(buf.length, p + 1 + (x % 7));
    out.push(buf.subarray(p, q));
    p = q;
  }
  return out;
}

test('frame mode: the same events as the reference for any chunking, nothing lost', () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const text = randomStream(seed);
    const framer = new SseFramer();
    const events: string[] = [];
    for (const c of chunks(Buffer.from(text), seed)) events.push(...framer.push(c));
    const rest = framer.flush();
    assert.equal(events.join('') + rest, text, `stream ${seed}: bytes lost or reordered`);
    const ref = reference(text);
    // A trailing lone `\r` may still become `\r\n`: the framer holds that event until the stream ends.
    const held = ref.rest === '' && text.endsWith('\r') ? 1 : 0;
    assert.deepEqual(events, ref.events.slice(0, ref.events.length - held), `stream ${seed}: ${JSON.stringify(text)}`);
  }
});

test('track mode keeps nothing and knows when the stream is between events', () => {
  for (let seed = 1; seed <= 3000; seed++) {
    const text = randomStream(seed);
    const framer = new SseFramer({ track: true });
    for (const c of chunks(Buffer.from(text), seed)) assert.deepEqual(framer.push(c), []);
    assert.equal(framer.pendingLength, 0);
    const ref = reference(text);
    const between = ref.rest === '' && !text.endsWith('\r');
    assert.equal(framer.betweenEvents, between, `stream ${seed}: ${JSON.stringify(text)}`);
  }
});

test('an event over the cap overflows once; events before it are still delivered', () => {
  const framer = new SseFramer({ maxEventLength: 1000 });
  const first = framer.push(Buffer.from(`data: small\n\ndata: ${'x'.repeat(600)}`));
  assert.deepEqual(first, ['data: small\n\n']);
  assert.equal(framer.overflowed, false);
  assert.deepEqual(framer.push(Buffer.from('x'.repeat(600))), []);
  assert.equal(framer.overflowed, true);
  assert.deepEqual(framer.push(Buffer.from('\n\ndata: later\n\n')), [], 'nothing after an overflow');
  // A complete event in a single chunk is capped too.
  const one = new SseFramer({ maxEventLength: 100 });
  assert.deepEqual(one.push(Buffer.from(`data: ${'y'.repeat(200)}\n\n`)), []);
  assert.equal(one.overflowed, true);
});

test('multi-byte characters split across chunks arrive intact', () => {
  const text = 'data: {"text":"grüße 日本 🎉"}\n\n';
  const buf = Buffer.from(text);
  const framer = new SseFramer();
  const events: string[] = [];
  for (let i = 0; i < buf.length; i++) events.push(...framer.push(buf.subarray(i, i + 1)));
  assert.deepEqual(events, [text]);
});

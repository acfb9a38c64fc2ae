/**
 * The federation's pure parts: names under each prefix mode, the session id, and the debounce of list
 * changes on the client's stream (with mocked timers, so nothing depends on the machine's speed).
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, mock, test } from 'node:test';
import { deadline } from '../../gateway/federation/catalog.ts';
import { MemberHealth } from '../../gateway/federation/member-health.ts';
import { exposeNames, splitPrefixed, type Naming } from '../../gateway/federation/names.ts';
import { encodeSession, newSession, readSession, SessionState } from '../../gateway/federation/session.ts';
import { openClientStream } from '../../gateway/federation/streams.ts';
import type { UpstreamCall } from '../../gateway/runtime.ts';

const naming = (mode: Naming['mode']): Naming => ({ mode, separator: '__', prefixes: new Map([['a', 'a'], ['b', 'bee']]) });
const items = [{ member: 'a', name: 'search' }, { member: 'a', name: 'alpha' }, { member: 'b', name: 'search' }];

describe('names', () => {
  test('always prefixes everything; on-collision only shared names; never leaves them and reports', () => {
    assert.deepEqual(exposeNames(items, naming('always')), { ok: true, names: ['a__search', 'a__alpha', 'bee__search'] });
    assert.deepEqual(exposeNames(items, naming('on-collision')), { ok: true, names: ['a__search', 'alpha', 'bee__search'] });
    assert.deepEqual(exposeNames(items, naming('never')), { ok: false, name: 'search', members: ['a', 'b'] });
  });

  test('a collision left after prefixing is reported, not settled', () => {
    // b's own tool "a__alpha" meets a's prefixed "alpha" once "search" forces prefixes in on-collision.
    const tricky = [{ member: 'a', name: 'search' }, { member: 'b', name: 'search' }, { member: 'b', name: 'a__search' }];
    const r = exposeNames(tricky, naming('on-collision'));
    assert.deepEqual(r, { ok: false, name: 'a__search', members: ['a', 'b'] });
    assert.deepEqual(exposeNames([{ member: 'a', name: 'x' }, { member: 'a', name: 'x' }], naming('always')), { ok: false, name: 'a__x', members: ['a'] });
  });

  test('a prefixed name is read back by its prefix alone', () => {
    assert.deepEqual(splitPrefixed('bee__search', naming('always'), ['a', 'b']), { member: 'b', name: 'search' });
    assert.deepEqual(splitPrefixed('a__x__y', naming('always'), ['a', 'b']), { member: 'a', name: 'x__y' });
    assert.equal(splitPrefixed('bee__search', naming('always'), ['a']), undefined, 'an invisible member is never reached');
    assert.equal(splitPrefixed('a__', naming('always'), ['a']), undefined);
  });
});

describe('session id', () => {
  test('round-trips the client context and member sessions', () => {
    const s = newSession({ protocolVersion: '2025-06-18', capabilities: { elicitation: {} }, clientInfo: { name: 'c', version: '2' } });
    s.sealed = { a: { id: 'sess-1', version: '2025-06-18', caps: 'tl' }, b: { id: undefined, version: '2025-03-26', caps: 't' } };
    const { id, unsealed } = encodeSession(s);
    assert.deepEqual(unsealed, []);
    assert.deepEqual(readSession(id), s);
    assert.equal(readSession('not-ours'), undefined);
    assert.equal(readSession(Buffer.from('{"f":2}').toString('base64url')), undefined);
  });

  test('an unknown protocol version gets the latest 2025 one', () => {
    assert.equal(newSession({ protocolVersion: '1999-01-01' }).client.protocolVersion, '2025-11-25');
  });

  test('a huge client identity is trimmed to what members need, and the id still fits', () => {
    const s = newSession({ capabilities: { elicitation: {}, experimental: { blob: 'x'.repeat(6000) } }, clientInfo: { name: 'c', version: '1', description: 'y'.repeat(6000) } });
    const { id } = encodeSession(s);
    assert.ok(id.length <= 5000);
    assert.deepEqual(readSession(id)!.client.clientInfo, { name: 'c', version: '1' });
    assert.deepEqual(readSession(id)!.client.capabilities, { elicitation: {} });
  });

  test('member sessions that do not fit stay out of the id, and are named', () => {
    const s = newSession({});
    const sealed: Record<string, { id: string; version: string; caps: string }> = {};
    for (let i = 0; i < 60; i++) sealed[`member-${i}`] = { id: 'x'.repeat(100), version: '2025-11-25', caps: 't' };
    s.sealed = sealed;
    const { id, unsealed } = encodeSession(s);
    assert.ok(id.length <= 5000);
    assert.ok(unsealed.length > 0);
    const back = readSession(id)!;
    for (const name of unsealed) assert.equal(back.sealed[name], undefined);
    assert.equal(Object.keys(back.sealed).length + unsealed.length, 60);
  });
});

test('list changes within the debounce window reach the client once', async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const state = new SessionState();
  const ended = new AbortController();
  const call: UpstreamCall = { method: 'GET', pathAndQuery: '/mcp', headers: {}, body: undefined, principal: undefined, signal: ended.signal };
  const out = openClientStream({ call, state, members: [], sessionFor: () => Promise.reject(new Error('none')), debounceMs: 200, maxMessageBytes: 1 << 20, closing: new AbortController().signal });
  const chunks: string[] = [];
  out.on('data', (c: Buffer) => chunks.push(c.toString()));
  const [stream] = state.streams;
  stream.changed('notifications/tools/list_changed');
  stream.changed('notifications/tools/list_changed');
  stream.changed('notifications/prompts/list_changed');
  mock.timers.tick(199);
  stream.changed('notifications/tools/list_changed');
  mock.timers.tick(1);
  await new Promise((r) => setImmediate(r));
  const events = chunks.join('').split('\n\n').filter(Boolean).map((e) => JSON.parse(e.replace(/^event: message\ndata: /, '')).method);
  assert.deepEqual(events.sort(), ['notifications/prompts/list_changed', 'notifications/tools/list_changed']);
  stream.changed('notifications/tools/list_changed');
  mock.timers.tick(200);
  await new Promise((r) => setImmediate(r));
  assert.equal(chunks.join('').split('tools/list_changed').length - 1, 2, 'a change after the window is told again');
  ended.abort();
});

test('a member flapping on every request is logged and told to clients at most once per window, and its last state then', (t) => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  t.after(() => mock.timers.reset());
  const lines: Array<{ level: string; member?: string }> = [];
  const log = { warn: (o: { member: string }) => lines.push({ level: 'warn', member: o.member }), info: (o: { member: string }) => lines.push({ level: 'info', member: o.member }) };
  let told = 0;
  const health = new MemberHealth(['a', 'b'], log as never, () => { told++; }, 30_000);
  health.report('a', 'answered HTTP 503');
  assert.deepEqual([lines.length, told], [1, 1]);
  assert.equal(health.list().find((s) => s.member === 'a')!.reason, 'answered HTTP 503');
  for (let i = 0; i < 50; i++) {
    health.report('a', undefined);
    health.report('a', 'answered HTTP 503');
  }
  health.report('a', undefined);
  assert.deepEqual([lines.length, told], [1, 1], 'the flapping inside the window is not told');
  assert.equal(health.list().find((s) => s.member === 'a')!.ok, true, 'the state itself always follows');
  mock.timers.tick(30_000);
  assert.deepEqual(lines.map((l) => l.level), ['warn', 'info'], 'the end of the window tells the state it ended in');
  assert.equal(told, 2);
  health.report('b', 'timed out after 5000 ms');
  assert.equal(told, 3, 'another member has its own window');
  health.close();
});

test('a deadline on a long-lived signal leaves no listener on it once it has fired', (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const closing = new AbortController();
  const signals = Array.from({ length: 5 }, () => deadline(closing.signal, 1000));
  assert.equal(getEventListeners(closing.signal, 'abort').length >= 5, true);
  mock.timers.tick(1000);
  assert.ok(signals.every((s) => s.aborted && (s.reason as Error).message === 'timed out after 1000 ms'));
  assert.equal(getEventListeners(closing.signal, 'abort').length, 0);
});

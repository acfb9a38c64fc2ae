/**
 * Mirror header values (SEP-2243): plain, or `=?base64?…?=` that must be exact base64, as the
 * specification's test-case table has it (the conformance suite's sep-2243 cases).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeHeaderValue } from '../../gateway/era/mirror-headers.ts';

test('base64 values decode only when exact: padding as base64 has it, alphabet only', () => {
  assert.equal(decodeHeaderValue('=?base64?SGVsbG8=?='), 'Hello');
  assert.equal(decodeHeaderValue('=?base64?SGVsbG8?='), undefined, 'missing padding');
  assert.equal(decodeHeaderValue('=?base64?SGVsbG8==?='), undefined, 'extra padding');
  assert.equal(decodeHeaderValue('=?base64?SGVs!!!bG8=?='), undefined, 'outside the alphabet');
  assert.equal(decodeHeaderValue('plain value'), 'plain value');
  assert.equal(decodeHeaderValue('=?base64?SGVsbG8='), '=?base64?SGVsbG8=', 'without its suffix it is a literal');
  assert.equal(decodeHeaderValue('caf\u00e9'), undefined, 'not visible ASCII');
});

/**
 * Templates and command preparation: values are safe in paths by construction, and config mistakes
 * are refused when the stdio upstream is built, naming the field.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StdioUpstreamSchema } from '../../config/schema.ts';
import { prepareCommand, resolveCommand } from '../../gateway/stdio/command.ts';
import { StdioConfigError, StdioUpstreamError } from '../../gateway/stdio/errors.ts';
import { encodeTemplateValue, renderTemplate, templateValues } from '../../gateway/stdio/templates.ts';

const cfg = (stdio: Record<string, unknown>) => StdioUpstreamSchema.parse({ stdio }).stdio;
const dir = mkdtempSync(path.join(tmpdir(), 'mcpgw-stdio-tpl-'));

describe('stdio templates', () => {
  test('sub and session are encoded injectively and never contain a separator', () => {
    assert.equal(encodeTemplateValue('alice@example.com'), 'alice@example.com');
    assert.equal(encodeTemplateValue('auth0|123'), 'auth0~7C123');
    assert.notEqual(encodeTemplateValue('a|b'), encodeTemplateValue('a_b'));
    assert.notEqual(encodeTemplateValue('a~7Cb'), encodeTemplateValue('a|b'), '~ itself is encoded');
    assert.equal(encodeTemplateValue('../../etc/passwd'), '..~2F..~2Fetc~2Fpasswd');
    assert.equal(encodeTemplateValue('a\\b'), 'a~5Cb');
    assert.equal(encodeTemplateValue('é'), '~C3~A9');
  });

  test('a tenant outside the alphabet is refused', () => {
    assert.throws(() => templateValues({ tenant: 'Acme', sub: '', session: 's' }), (e: unknown) => e instanceof StdioUpstreamError && e.code === 'GW_ERR_INVALID_TENANT');
    assert.throws(() => templateValues({ tenant: '../x', sub: '', session: 's' }), StdioUpstreamError);
    assert.deepEqual(templateValues({ tenant: 'acme-1', sub: 'a/b', session: 's' }), { tenant: 'acme-1', sub: 'a~2Fb', session: 's' });
  });

  test('a value that would make a path segment "." or ".." is refused; literal dots in the template are kept', () => {
    const v = (sub: string) => templateValues({ tenant: 'acme', sub, session: 'x' });
    assert.equal(renderTemplate('data/{tenant}/{sub}.jsonl', v('alice')), 'data/acme/alice.jsonl');
    assert.equal(renderTemplate('../shared/{tenant}.jsonl', v('alice')), '../shared/acme.jsonl');
    assert.throws(() => renderTemplate('data/{sub}/memory.jsonl', v('..')), (e: unknown) => e instanceof StdioUpstreamError && e.code === 'GW_ERR_UNSAFE_TEMPLATE_VALUE');
    assert.throws(() => renderTemplate('data/.{sub}/m', v('.')), StdioUpstreamError);
    assert.equal(renderTemplate('data/{sub}/m', v('...')), 'data/.../m');
  });
});

describe('stdio command preparation', () => {
  test('node runs the gateway\'s own node; a node script from node_modules/.bin runs with it too', () => {
    assert.deepEqual(resolveCommand('node', dir, 'x'), { file: process.execPath, prefixArgs: [] });
    const memory = resolveCommand('mcp-server-memory', dir, 'x');
    assert.equal(memory.file, process.execPath);
    assert.match(memory.prefixArgs[0], /server-memory[/\\]dist[/\\]index\.js$/);
    assert.equal(path.basename(resolveCommand('sh', dir, 'x').file), 'sh');
  });

  test('an unknown command is a config error naming the field', () => {
    assert.throws(
      () => prepareCommand('mem', cfg({ command: 'no-such-mcp-server-anywhere' }), dir),
      (e: unknown) => e instanceof StdioConfigError && e.path === 'upstreams.mem.stdio.command' && /not found/.test(e.message),
    );
  });

  test('an unknown template variable is a config error', () => {
    assert.throws(
      () => prepareCommand('mem', cfg({ command: 'node', args: ['{tenent}'] }), dir),
      (e: unknown) => e instanceof StdioConfigError && e.path === 'upstreams.mem.stdio.args[0]',
    );
    // Braces that are not a {word} are literal (JSON arguments).
    assert.doesNotThrow(() => prepareCommand('mem', cfg({ command: 'node', args: ['{"a":1}'] }), dir));
  });

  test('shared mode: variables shaping the process must be in the pool key', () => {
    assert.throws(
      () => prepareCommand('mem', cfg({ command: 'node', pathEnv: { F: 'data/{sub}.jsonl' } }), dir),
      (e: unknown) => e instanceof StdioConfigError && e.path === 'upstreams.mem.stdio.poolKey' && /\{sub\}/.test(e.message),
    );
    assert.doesNotThrow(() => prepareCommand('mem', cfg({ command: 'node', pathEnv: { F: 'data/{sub}.jsonl' }, poolKey: '{tenant}/{sub}' }), dir));
    assert.doesNotThrow(() => prepareCommand('mem', cfg({ command: 'node', pathEnv: { F: 'data/{session}.jsonl' }, mode: 'per-session' }), dir));
  });

  test('rendering: pathEnv becomes absolute under the config folder; secrets are not inherited', () => {
    process.env.MCPGW_TEST_SECRET = 'hunter2';
    process.env.MCPGW_TEST_PLAIN = 'visible';
    try {
      const prepared = prepareCommand('mem', cfg({ command: 'node', args: ['--t={tenant}'], env: { MODE: '{tenant}-x' }, pathEnv: { F: 'data/m-{tenant}.jsonl' } }), dir);
      const spec = prepared.render(templateValues({ tenant: 'acme', sub: 'u', session: 's' }));
      assert.deepEqual(spec.args, ['--t=acme']);
      assert.equal(spec.env.F, path.join(dir, 'data/m-acme.jsonl'));
      assert.equal(spec.env.MODE, 'acme-x');
      assert.equal(spec.env.MCPGW_TEST_SECRET, undefined);
      assert.equal(spec.env.MCPGW_TEST_PLAIN, 'visible');
      assert.equal(spec.cwd, dir);
      assert.equal(prepared.renderPoolKey(templateValues({ tenant: 'acme', sub: 'u', session: 's' })), 'acme');
    } finally {
      delete process.env.MCPGW_TEST_SECRET;
      delete process.env.MCPGW_TEST_PLAIN;
    }
  });
});

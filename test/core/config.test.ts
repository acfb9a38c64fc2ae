/**
 * Configuration validation: fixtures in test/fixtures/config/*.yaml, each with a `<name>.expected.txt`
 * listing the problems the loader must report, one a line. Each expected line is the start of one
 * reported problem (`<path>: <problem>`; `*` stands for any text, e.g. an absolute path), in any
 * order, and the number of problems must match: a
 * loader that reports the right problem plus noise, or the right problem at the wrong path, fails.
 *
 * Validation runs as the gateway runs it: `loadConfigFile` (YAML, `${ENV}`, schema, references), then
 * `resolvePlugins` (plugin types, plugin options, plugin dependencies). Also the `--check` command.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolvePlugins } from '../../config/compile.ts';
import { ConfigError, loadConfigFile, parseConfig, type Env } from '../../config/load.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURES = path.join(ROOT, 'test/fixtures/config');
/** Node 24 from node_modules: the system node may be too old to strip types. */
const NODE = path.join(ROOT, 'node_modules/.bin/node');

/** Loads and resolves a config as the gateway does; returns the ConfigError it threw, or fails. */
async function problemsOf(file: string, env: Env = {}): Promise<string[]> {
  try {
    const loaded = await loadConfigFile(file, env);
    await resolvePlugins(loaded);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${(err as Error).stack}`);
    assert.equal(err.code, 'GW_ERR_CONFIG');
    assert.ok(err.message.includes(file), 'the message names the file');
    return err.problems;
  }
  assert.fail(`${path.basename(file)} was accepted; it must be refused`);
}

/** `a * b` → /^a .* b/: the expected line is a prefix in which `*` matches anything. */
function prefixPattern(line: string): RegExp {
  return new RegExp(`^${line.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}`);
}

function assertProblems(actual: string[], expected: string[], fixture: string): void {
  const unmatched = [...actual];
  for (const want of expected) {
    const pattern = prefixPattern(want);
    const i = unmatched.findIndex((p) => pattern.test(p));
    assert.ok(i >= 0, `${fixture}: no problem starts with ${JSON.stringify(want)}; got:\n  ${actual.join('\n  ')}`);
    unmatched.splice(i, 1);
  }
  assert.deepEqual(unmatched, [], `${fixture}: unexpected extra problems`);
}

const badFixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.expected.txt')).map((f) => f.replace(/\.expected\.txt$/, ''));

test('there are fixtures to check', () => {
  assert.ok(badFixtures.length >= 12, `found only ${badFixtures.length} fixtures`);
});

for (const name of badFixtures) {
  test(`fixture ${name}.yaml is refused with the expected problems`, async () => {
    const expected = readFileSync(path.join(FIXTURES, `${name}.expected.txt`), 'utf8')
      .split('\n').map((l) => l.trim()).filter(Boolean);
    const problems = await problemsOf(path.join(FIXTURES, `${name}.yaml`));
    assertProblems(problems, expected, name);
  });
}

test('the good fixture loads: ${VAR:-default}, $$, durations, sizes, module plugins', async () => {
  const loaded = await loadConfigFile(path.join(FIXTURES, 'good.yaml'), {});
  const routes = await resolvePlugins(loaded);
  const up = loaded.config.upstreams.up;
  assert.ok('url' in up);
  assert.equal(loaded.config.listeners[0].port, 0, '${CONFIG_TEST_PORT:-0} falls back to 0, as a number');
  assert.equal(up.headers['x-mode'], 'fallback');
  assert.equal(up.headers['x-price'], '$5', '$$ is a literal $');
  assert.deepEqual(up.timeouts, { connect: 250, firstByte: 30_000, idle: 300_000, total: 7_200_000 });
  const route = loaded.config.routes[0];
  assert.equal(route.maxRequestBytes, 4_000_000);
  assert.equal(route.maxResponseBytes, 512 * 1024);
  assert.equal(route.heartbeat, 15_000);
  assert.equal(route.legacyPostTimeout, 1500);
  assert.equal(loaded.dir, FIXTURES, 'relative paths resolve against the config file folder');
  assert.deepEqual(routes[0].plugins.map((p) => p.definition.type), ['audit', 'header-stamp']);
  assert.deepEqual(routes[0].plugins[1].options, { header: 'x-stamp', value: 'stamped' });
  assert.equal(routes[0].name, 'main/mcp');
});

test('a set variable wins over the default; an empty one takes the default', async () => {
  const file = path.join(FIXTURES, 'good.yaml');
  const set = await loadConfigFile(file, { CONFIG_TEST_PORT: '4567', CONFIG_TEST_MODE: 'strict' });
  assert.equal(set.config.listeners[0].port, 4567, 'an interpolated port is coerced to a number');
  assert.equal((set.config.upstreams.up as { headers: Record<string, string> }).headers['x-mode'], 'strict');
  const empty = await loadConfigFile(file, { CONFIG_TEST_MODE: '' });
  assert.equal((empty.config.upstreams.up as { headers: Record<string, string> }).headers['x-mode'], 'fallback');
});

test('the unset-variable fixture loads once the variable is set', async () => {
  const loaded = await loadConfigFile(path.join(FIXTURES, 'unset-env.yaml'), { UPSTREAM_KEY_FOR_CONFIG_TEST: 's3cret' });
  assert.equal((loaded.config.upstreams.up as { headers: Record<string, string> }).headers.authorization, 'Bearer s3cret');
});

const minimal = (upstreamHeaders: string) => `
listeners: [{ name: main, port: 0 }]
upstreams: { up: { url: "http://127.0.0.1:9/mcp", headers: { ${upstreamHeaders} } } }
routes: [{ listener: main, path: /mcp, upstream: up }]
`;
const inline = (text: string, env: Env = {}) => parseConfig(text, { env, source: '<inline>', dir: FIXTURES });

test('interpolation: $${VAR} is literal, a value cannot inject YAML, ${VAR:-} allows empty', () => {
  const c = inline(minimal('a: "$${HOME_NOT_EXPANDED}", b: "${INJECT}", c: "x${EMPTY_OK:-}y"'), { INJECT: '"}\nevil: [1' });
  const h = (c.config.upstreams.up as { headers: Record<string, string> }).headers;
  assert.equal(h.a, '${HOME_NOT_EXPANDED}');
  assert.equal(h.b, '"}\nevil: [1', 'the value stays a string: interpolation happens after YAML parsing');
  assert.equal(h.c, 'xy');
});

test('inline problems name their path: wrong types and bad YAML', () => {
  const cases: Array<[string, string]> = [
    [minimal('').replace('port: 0', 'port: 70000'), 'listeners[0].port:'],
    [minimal('').replace('path: /mcp', 'path: /mcp, heartbeat: [1]'), 'routes[0].heartbeat:'],
    [minimal('').replace('"http://127.0.0.1:9/mcp"', 'not a url'), 'upstreams.up'],
    [`${minimal('')}\nlog: { level: loud }`, 'log.level:'],
    [minimal('').replace('routes: [', 'routes: [ { listener: main, path: /x, upstream: up, plugins: [{ destination: log }] },'), 'routes[0].plugins[0].type:'],
    ['listeners: [{ name: main, port: 0 }\nroutes: :', 'YAML:'],
    ['listeners: []\nlisteners: []', 'YAML:'],
  ];
  for (const [text, prefix] of cases) {
    assert.throws(() => inline(text), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, 'GW_ERR_CONFIG');
      assert.ok(err.problems.some((p) => p.startsWith(prefix)), `expected a problem at ${prefix}; got ${err.problems.join(' | ')}`);
      return true;
    });
  }
});

test('a file that does not exist is a config error, not a crash', async () => {
  const problems = await problemsOf(path.join(FIXTURES, 'no-such-file.yaml'));
  assert.equal(problems.length, 1);
  assert.match(problems[0], /cannot read the file: ENOENT/);
});

/** Runs `node gateway/main.ts --check --config <file>`; resolves with its exit code and output. */
function runCheck(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.UPSTREAM_KEY_FOR_CONFIG_TEST;
    const child = spawn(NODE, ['gateway/main.ts', '--check', '--config', file], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

test('--check exits 1 and prints the path of each problem for a bad file', async () => {
  const bad = await runCheck(path.join(FIXTURES, 'unknown-plugin-option.yaml'));
  assert.equal(bad.code, 1, bad.stderr);
  assert.match(bad.stderr, /routes\[0\]\.plugins\[0\]\.destinaton: unknown key/);
  assert.equal(bad.stdout, '');
  const deps = await runCheck(path.join(FIXTURES, 'plugin-missing-dependency.yaml'));
  assert.equal(deps.code, 1);
  assert.match(deps.stderr, /routes\[0\]\.plugins\[0\]: plugin "jwt" needs a "token" plugin/);
});

test('--check exits 0 and prints OK for a good file, without starting anything', async () => {
  const good = await runCheck(path.join(FIXTURES, 'good.yaml'));
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /good\.yaml: OK \(1 listeners, 1 routes, 1 upstreams, 2 plugins\)/);
});

test('YAML merge keys: <<: *anchor copies a mapping, keys written next to it override it', () => {
  const c = inline(`
x-upstream: &upstream { url: "http://127.0.0.1:9/mcp", headers: { x-team: core }, timeouts: { connect: 1s } }
listeners: [{ name: main, port: 0 }]
upstreams:
  plain: { <<: *upstream }
  changed:
    <<: *upstream
    url: "http://127.0.0.1:10/other"
    headers: { x-team: edge }
routes:
  - &route { listener: main, path: /a, upstream: plain, heartbeat: 5s }
  - { <<: *route, path: /b, upstream: changed }
`);
  const { plain, changed } = c.config.upstreams as Record<string, { url: string; headers: Record<string, string>; timeouts: { connect: number } }>;
  assert.equal(plain.url, 'http://127.0.0.1:9/mcp');
  assert.deepEqual(plain.headers, { 'x-team': 'core' });
  assert.equal(changed.url, 'http://127.0.0.1:10/other', 'a key next to <<: overrides the merged one');
  assert.deepEqual(changed.headers, { 'x-team': 'edge' });
  assert.equal(changed.timeouts.connect, 1000, 'keys not overridden are merged');
  assert.deepEqual(c.config.routes.map((r) => [r.path, r.upstream, r.heartbeat]), [['/a', 'plain', 5000], ['/b', 'changed', 5000]]);
});

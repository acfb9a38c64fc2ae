/**
 * The docs are part of the feature: the README's first commands are the ones CI and users run, and
 * every link in the docs leads somewhere.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { parseConfig } from '../config/load.ts';
import { resolvePlugins } from '../config/compile.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (f: string) => readFileSync(path.join(root, f), 'utf8');

test('the README starts with the two commands, and .ci/run runs the same test command', () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(read('README.md'))![1];
  const [start, tests] = firstBlock.trim().split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
  assert.equal(start, 'npm install && npm start');
  assert.equal(tests, 'npm install && npm test');
  assert.match(read('.ci/run'), /^npm install && npm test$/m);
  const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string>; dependencies: Record<string, string> };
  assert.match(pkg.scripts.test, /^tsc --noEmit/);
  assert.ok(pkg.dependencies.node, 'npm install brings a supported Node');
});

test('every relative link in README.md and docs/ points at an existing file', () => {
  const files = ['README.md', ...readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const broken: string[] = [];
  for (const file of files) {
    for (const [, target] of read(file).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
      if (/^[a-z]+:/i.test(target)) continue;
      if (!existsSync(path.resolve(root, path.dirname(file), target))) broken.push(`${file} → ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('the YAML examples in the README are valid gateway config fragments', async () => {
  const blocks = [...read('README.md').matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 2);
  for (const block of blocks) {
    const fragment = parse(block) as Record<string, unknown>;
    // Each example is either a plugin list or an upstream map: embed it in a minimal config.
    const config = Array.isArray(fragment.plugins)
      ? { listeners: [{ name: 'l', port: 0 }], upstreams: { u: { url: 'http://127.0.0.1:1' } }, routes: [{ listener: 'l', path: '/mcp', upstream: 'u', plugins: fragment.plugins }] }
      : { listeners: [{ name: 'l', port: 0 }], upstreams: fragment.upstreams, routes: [{ listener: 'l', path: '/mcp', upstream: Object.keys(fragment.upstreams as object)[0] }] };
    // An example may name secrets by variable (`${FALKORDB_MCP_KEY}`), as an operator should write them.
    const env = Object.fromEntries([...block.matchAll(/\$\{([A-Z0-9_]+)\}/g)].map((m) => [m[1], 'set']));
    const loaded = parseConfig(JSON.stringify(config), { env, source: 'README.md', dir: root });
    await resolvePlugins(loaded);
  }
});

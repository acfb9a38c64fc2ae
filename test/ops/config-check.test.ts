/**
 * `--check` builds what a start builds, short of ports and processes, so a file it calls OK starts:
 * plugin instances (the jwt plugin's keys against its `algorithms`), stdio commands resolved on PATH,
 * stdio templates. A misspelled command fails `--check` and the start alike, with one clear line and
 * exit code 1, never a stack trace.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK } from 'jose';
import { ConfigError } from '../../config/load.ts';
import { checkConfig } from '../../gateway/check.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const NODE = path.join(ROOT, 'node_modules/.bin/node');

let dir: string;
before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-check-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

/** A config in `dir` with one listener, one route and the given upstream and plugins. */
async function config(name: string, upstream: string, plugins = '[]', extra = 'admin: { enabled: false }'): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, `
listeners: [{ name: main, port: 0 }]
upstreams:
  up: ${upstream}
routes: [{ listener: main, path: /mcp, upstream: up, plugins: ${plugins} }]
${extra}
`);
  return file;
}

async function problemsOf(file: string): Promise<string[]> {
  try {
    await checkConfig(file, {}, () => {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${(err as Error).stack}`);
    return err.problems;
  }
  assert.fail(`${path.basename(file)} passed the check; it must be refused`);
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ['gateway/main.ts', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

const jwt = (keys: string, algorithms: string) =>
  `[{ type: token }, { type: jwt, keys: ${keys}, algorithms: ${algorithms}, issuer: test, audience: test }]`;

describe('--check builds the plugins', () => {
  it('refuses jwt algorithms the development keys cannot verify (EdDSA keys, algorithms [ES256])', async () => {
    const file = await config('dev-mismatch', '{ url: "http://127.0.0.1:9/mcp" }', jwt('{ dev: { dir: keys-eddsa } }', '[ES256]'));
    const problems = await problemsOf(file);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0], /^routes\[0\]\.plugins\[1\]: plugin "jwt" could not start: none of the allowed algorithms \(ES256\) can be verified with the keys in .*jwks\.json \(they verify EdDSA\)$/);
  });

  it('refuses a JWKS file whose keys verify none of the algorithms, and an HMAC secret with RS256', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    await writeFile(path.join(dir, 'rsa-jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'r1' }] }));
    const jwks = await problemsOf(await config('jwks-mismatch', '{ url: "http://127.0.0.1:9/mcp" }', jwt('{ jwksFile: rsa-jwks.json }', '[ES256, EdDSA]')));
    assert.match(jwks.join('\n'), /^routes\[0\]\.plugins\[1\]: .*none of the allowed algorithms \(ES256, EdDSA\) can be verified with the keys in .*rsa-jwks\.json \(they verify RS256/);
    const secret = await problemsOf(await config('secret-mismatch', '{ url: "http://127.0.0.1:9/mcp" }', jwt(`{ secret: "${'s'.repeat(40)}" }`, '[RS256]')));
    assert.match(secret.join('\n'), /^routes\[0\]\.plugins\[1\]: .*none of the allowed algorithms \(RS256\) can be verified with an HMAC secret/);
  });

  it('accepts keys that verify one of the algorithms', async () => {
    const file = await config('dev-ok', '{ url: "http://127.0.0.1:9/mcp" }', jwt('{ dev: { dir: keys-ok } }', '[EdDSA, ES256]'));
    const warnings: string[] = [];
    const summary = await checkConfig(file, {}, (l) => warnings.push(l));
    assert.deepEqual(summary, { listeners: 1, routes: 1, upstreams: 1, plugins: 2 });
    assert.ok(warnings.some((w) => w.startsWith("Created the development issuer's signing keys")), warnings.join('\n'));
  });
});

describe('--check resolves stdio upstreams without starting them', () => {
  it('refuses a command that is not on PATH, naming the field', async () => {
    const problems = await problemsOf(await config('typo', '{ stdio: { command: mcp-server-memroy } }'));
    assert.deepEqual(problems, ['upstreams.up.stdio.command: command "mcp-server-memroy" not found (looked in node_modules/.bin and PATH)']);
  });

  it('refuses an unknown template variable with the ones that exist, and a missing cwd', async () => {
    const problems = await problemsOf(await config('template', '{ stdio: { command: node, args: ["data/{tennant}.json"], cwd: no-such-folder } }'));
    assert.deepEqual(problems, [
      'upstreams.up.stdio.args[0]: unknown template variable {tennant}; use {tenant}, {sub} or {session}',
      `upstreams.up.stdio.cwd: ${path.join(dir, 'no-such-folder')} is not an existing folder`,
    ]);
  });

  it('binds no port and spawns nothing: the ports may be taken, the command is never run', async () => {
    const marker = path.join(dir, 'ran');
    const script = path.join(dir, 'server.sh');
    await writeFile(script, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const taken: Server[] = await Promise.all([0, 1].map(() => new Promise<Server>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => resolve(s));
    })));
    try {
      const [port, adminPort] = taken.map((s) => (s.address() as { port: number }).port);
      const file = path.join(dir, 'busy.yaml');
      await writeFile(file, `
listeners: [{ name: main, port: ${port} }]
upstreams: { up: { stdio: { command: ./server.sh, mode: per-session } } }
routes: [{ listener: main, path: /mcp, upstream: up }]
admin: { port: ${adminPort} }
`);
      const summary = await checkConfig(file, {}, () => {});
      assert.equal(summary.upstreams, 1);
      assert.equal(existsSync(marker), false, 'the stdio command was run');
    } finally {
      for (const s of taken) s.close();
    }
  });
});

describe('a misspelled command, from the command line', () => {
  it('fails --check and the start with exit code 1 and one line naming the field, no stack trace', async () => {
    const file = await config('cli-typo', '{ stdio: { command: mcp-server-memroy } }');
    const line = `  - upstreams.up.stdio.command: command "mcp-server-memroy" not found (looked in node_modules/.bin and PATH)`;
    for (const args of [['--check', '--config', file], ['--config', file]]) {
      const r = await run(args);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `invalid configuration in ${file}:\n${line}\n`, args.join(' '));
      assert.doesNotMatch(r.stdout, /"level":(50|60)|\n\s+at /, 'no stack trace, no error log record');
    }
  });
});

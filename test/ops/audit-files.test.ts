/**
 * The files the gateway writes, as an auditor and an operator find them: the audit file and its
 * folder private to the gateway's user (0600, 0700), tenant data files of stdio upstreams the same;
 * one descriptor per audit file however often the config reloads; and log rotation: after
 * `mv audit.log audit.log.1`, a reload (in-process) or a SIGHUP (the gateway as a process) sends new
 * lines to a new audit.log while the old file keeps the old ones.
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { acquireWriter, openWriters } from '../../plugins/audit-files.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort, startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startChildGateway, stopAllChildGateways } from './support/child-gateway.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds (files are written in the background), else fails with `what`. */
async function eventually(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting until ${what}`);
    await sleep(25);
  }
}

/** Descriptors of this process open on `file`. */
function descriptorsOn(file: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      // Closed between the listing and the readlink.
    }
  }
  return n;
}

const text = (file: string) => readFile(file, 'utf8').catch(() => '');
const mode = async (p: string) => (await stat(p)).mode & 0o777;

/** Four routes sharing one audit file, as the default gateway.yaml has them. */
const fourRoutes = (upstream: string, dest: string) => `
listeners: [{ name: a, port: 0 }, { name: b, port: 0 }]
upstreams: { everything: { url: ${upstream}/mcp } }
x-plugins: &plugins [{ type: audit, destination: ${dest}, flushInterval: 20ms }]
routes:
  - { listener: a, path: /mcp, upstream: everything, plugins: *plugins }
  - { listener: a, path: /other, upstream: everything, plugins: *plugins }
  - { listener: b, path: /mcp, upstream: everything, plugins: *plugins }
  - { listener: b, path: /other, upstream: everything, plugins: *plugins }
`;

describe('audit files', () => {
  let everything: RunningUpstream;
  let gw: TestGateway;
  let file: string;
  before(async () => {
    everything = await startEverything('streamableHttp');
    gw = await startTestGateway(fourRoutes(everything.url, 'private/logs/audit.log'));
    file = path.join(gw.dir, 'private/logs/audit.log');
  });
  after(async () => {
    await gw?.close();
    await everything?.close();
    await stopAllChildGateways();
  });

  /** One initialize through the gateway, named so its exchange line can be found. */
  const visit = async (base: string, name: string) => {
    const client = await connectClient(`${base}/mcp`, { name });
    await client.close();
  };
  const logged = (f: string, name: string) => async () => (await text(f)).includes(`"name":"${name}"`);

  test('the audit file is created 0600, the folders it needs 0700', async () => {
    await visit(gw.url('a'), 'mode-check');
    await eventually(logged(file, 'mode-check'), 'the line is in the file');
    assert.equal(await mode(file), 0o600);
    assert.equal(await mode(path.dirname(file)), 0o700);
    assert.equal(await mode(path.join(gw.dir, 'private')), 0o700);
  });

  test('routes share one descriptor, and five reloads leave it at one', async () => {
    assert.equal(descriptorsOn(file), 1, 'four routes, one open file');
    for (let i = 0; i < 5; i++) assert.deepEqual(await gw.gw.reload(), { ok: true });
    // The old config's plugins close once its exchanges are done: in the background.
    await eventually(() => descriptorsOn(file) === 1, `one descriptor on the audit file (now ${descriptorsOn(file)})`);
    await visit(gw.url('b'), 'after-reloads');
    await eventually(logged(file, 'after-reloads'), 'lines still reach the file after the reloads');
  });

  test('rotation: after mv and a reload, new lines go to a new file, old lines stay in the old one', async () => {
    await visit(gw.url('a'), 'before-rotation');
    await eventually(logged(file, 'before-rotation'), 'the first line is written');
    await rename(file, `${file}.1`);
    assert.deepEqual(await gw.gw.reload(), { ok: true });
    await visit(gw.url('a'), 'after-rotation');
    await eventually(logged(file, 'after-rotation'), 'the new line is in a new audit.log');
    const old = await text(`${file}.1`);
    assert.ok(old.includes('"name":"before-rotation"'));
    assert.ok(!old.includes('after-rotation'), 'nothing new lands in the rotated file');
    assert.equal(await mode(file), 0o600, 'the new file is private too');
    await eventually(() => descriptorsOn(`${file}.1`) === 0, 'the rotated file is closed');
  });

  test('SIGHUP to the gateway process reopens the audit file (logrotate\'s postrotate)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-rotate-'));
    const [port, adminPort] = [await freePort(), await freePort()];
    const config = path.join(dir, 'gateway.yaml');
    await writeFile(config, `
listeners: [{ name: main, port: ${port} }]
upstreams: { everything: { url: ${everything.url}/mcp } }
routes: [{ listener: main, path: /mcp, upstream: everything, plugins: [{ type: audit, destination: audit.log, flushInterval: 20ms }] }]
admin: { port: ${adminPort} }
log: { level: info, pretty: false }
`);
    const g = await startChildGateway(config, { port });
    const log = path.join(dir, 'audit.log');
    const base = `http://127.0.0.1:${port}`;
    await visit(base, 'before-hup');
    await eventually(logged(log, 'before-hup'), 'the first line is written');
    await rename(log, `${log}.1`);
    g.child.kill('SIGHUP');
    await g.waitForLog((l) => l.msg === 'configuration reloaded', 10_000, 'the reload after SIGHUP');
    await visit(base, 'after-hup');
    await eventually(logged(log, 'after-hup'), 'the new line is in a new audit.log');
    assert.ok(!(await text(`${log}.1`)).includes('after-hup'));
    assert.ok((await text(`${log}.1`)).includes('before-hup'));
    await g.stop();
  });

  test('stdio data files are created private to the gateway\'s user', async () => {
    const data = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  memory: { stdio: { command: mcp-server-memory, pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' } } }
routes: [{ listener: main, path: /mcp, upstream: memory }]
`);
    try {
      const client = await connectClient(`${data.url()}/mcp`);
      await client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'audit', entityType: 'test', observations: [] }] } });
      await client.close();
      // No authentication on this route: {tenant} is empty.
      const jsonl = path.join(data.dir, 'data/memory-.jsonl');
      await eventually(async () => (await text(jsonl)).includes('"audit"'), 'the entity is stored');
      assert.equal(await mode(jsonl), 0o600);
      assert.equal(await mode(path.dirname(jsonl)), 0o700);
    } finally {
      await data.close();
    }
  });

  test('a reopen that fails is logged, and the next one opens the file again', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-reopen-'));
    const file = path.join(dir, 'logs/audit.log');
    const errors: string[] = [];
    const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(line) });
    const open = openWriters();
    const w = acquireWriter('logs/audit.log', dir, log);
    const again = acquireWriter('logs/audit.log', dir, log);
    assert.equal(again.stream, w.stream, 'one writer per destination');
    assert.equal(openWriters(), open + 1);
    const written = (line: string) => async () => {
      w.flush();
      return (await text(file)).includes(line);
    };
    w.stream.write('before\n');
    await eventually(written('before'), 'the first line is written');
    await rm(path.dirname(file), { recursive: true });
    w.reopen();
    await eventually(() => errors.some((l) => l.includes('ENOENT')), 'the failed reopen is logged');
    await mkdir(path.dirname(file));
    w.reopen();
    w.stream.write('after\n');
    await eventually(written('after'), 'a later reopen opens the file again');
    assert.ok(!errors.some((l) => l.includes('EBADF')), 'the old descriptor is closed once, not twice');
    await again.release();
    assert.equal(openWriters(), open + 1, 'a holder is left: still open');
    await w.release();
    assert.equal(openWriters(), open, 'the last release closes it');
    assert.equal(descriptorsOn(file), 0);
  });
});

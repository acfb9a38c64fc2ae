/**
 * `npm start` and signals: npm runs the gateway through `sh -c`, and forwards a SIGTERM to that shell
 * only; the gateway must stop with npm instead of staying behind, orphaned, its port still bound
 * (gateway/parent-watch.ts). The banner's pid is the gateway's own.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopWhenNpmParentExits } from '../../gateway/parent-watch.ts';
import { canConnect, isAlive, sleep } from './support/child-gateway.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Polls `condition` until it holds; generous, because CI machines are slow and loaded. */
const cleanup: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

describe('npm start', () => {
  it('stops the gateway when npm gets SIGTERM: no process left, the port closed', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-npm-start-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, `
listeners: [{ name: main, port: 0 }]
upstreams: { up: { url: "http://127.0.0.1:9/mcp" } }
routes: [{ listener: main, path: /mcp, upstream: up }]
admin: { enabled: false }
log: { pretty: false }
`);
    const npm: ChildProcess = spawn('npm', ['start', '--silent', '--', '--config', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    npm.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    npm.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    const npmExited = new Promise<void>((resolve) => npm.once('exit', () => resolve()));
    let gatewayPid: number | undefined;
    cleanup.push(async () => {
      // Only what this test started: npm, and the gateway whose pid its banner printed.
      if (npm.exitCode === null && npm.signalCode === null) npm.kill('SIGKILL');
      if (gatewayPid !== undefined && isAlive(gatewayPid)) process.kill(gatewayPid, 'SIGKILL');
    });

    await waitFor(() => /pid \d+: Ctrl-C or SIGTERM stops it/.test(out) || npm.exitCode !== null, 'the banner is printed', 60_000);
    const banner = /main +(http:\/\/127\.0\.0\.1:(\d+))[\s\S]*pid (\d+): /.exec(out);
    assert.ok(banner, `no banner with a listener and a pid in:\n${out}`);
    const port = Number(banner[2]);
    gatewayPid = Number(banner[3]);
    assert.notEqual(gatewayPid, npm.pid, 'the banner shows the gateway, not npm');
    assert.match(readFileSync(`/proc/${gatewayPid}/cmdline`, 'utf8'), /gateway\/main\.ts/);
    assert.equal(await canConnect(port), true, 'the gateway listens');

    npm.kill('SIGTERM');
    await npmExited;
    const pid = gatewayPid;
    await waitFor(() => !isAlive(pid), `the gateway (pid ${pid}) has exited; output:\n${out}`, 60_000);
    assert.equal(await canConnect(port), false, 'the port is closed');
    assert.match(out, /the npm process that started the gateway is gone: shutting down/);
    assert.match(out, /gateway stopped/);
  });
});

describe('stopWhenNpmParentExits', () => {
  it('fires once the parent changes, only for npm scripts', async () => {
    let parent = 1234;
    let fired = 0;
    let looked = 0;
    const stop = stopWhenNpmParentExits(() => fired++, { env: { npm_lifecycle_event: 'start' }, intervalMs: 5, parentPid: () => (looked++, parent) });
    cleanup.push(stop);
    // Anchored on the watch having looked several times, not on how much it could do in a fixed time.
    await waitFor(() => looked >= 5, 'the watch looks at the parent a few times');
    assert.equal(fired, 0, 'the same parent: nothing happens');
    parent = 1;
    await waitFor(() => fired > 0, 'the watch fires');
    await sleep(50);
    assert.equal(fired, 1, 'once');

    // Started directly (nohup node gateway/main.ts &): meant to outlive its shell.
    let direct = 0;
    let directParent = 1234;
    const stopDirect = stopWhenNpmParentExits(() => direct++, { env: {}, intervalMs: 5, parentPid: () => directParent });
    cleanup.push(stopDirect);
    directParent = 1;
    await sleep(100);
    assert.equal(direct, 0);
  });
});

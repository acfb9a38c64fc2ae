/**
 * TLS listeners (`listeners[].tls`), end to end: an official SDK client through an HTTPS listener with
 * the token and jwt plugins; certificate files rotated under a running gateway (new connections get the
 * new certificate, open ones keep theirs, a bad file keeps the old one); a listener switched between
 * plain HTTP and TLS on the same port by reload.
 *
 * Certificates are self-signed, made with openssl per run. This process trusts them through
 * tls.setDefaultCACertificates, which Node's fetch (and so the SDK client) uses.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { startTestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { freePort, startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { waitFor } from '../helpers/wait.ts';

interface Cert { cert: string; key: string; fingerprint: string }

async function makeCert(dir: string, name: string): Promise<Cert> {
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  await promisify(execFile)('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1', '-keyout', keyFile, '-out', certFile,
  ]);
  const cert = await readFile(certFile, 'utf8');
  return { cert, key: await readFile(keyFile, 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** Opens a TLS connection and says which certificate the gateway presented; the socket stays open. */
function connectTls(port: number): Promise<{ socket: tls.TLSSocket; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername: 'localhost' }, () => {
      resolve({ socket, fingerprint: socket.getPeerCertificate().fingerprint256 });
    });
    socket.once('error', reject);
  });
}

async function servedFingerprint(port: number): Promise<string> {
  const { socket, fingerprint } = await connectTls(port);
  socket.destroy();
  return fingerprint;
}

/** One HTTP/1.1 request on an already open socket: the status line of the answer. */
function requestOn(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.on('data', (b: Buffer) => {
      text += b.toString();
      if (text.includes('\r\n')) resolve(text.slice(0, text.indexOf('\r\n')));
    });
    socket.once('error', reject);
    socket.write('GET /mcp HTTP/1.1\r\nhost: localhost\r\naccept: text/event-stream\r\n\r\n');
  });
}

let everything: RunningUpstream;
let certs: { first: Cert; second: Cert };
before(async () => {
  everything = await startEverything('streamableHttp');
  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-tls-'));
  certs = { first: await makeCert(dir, 'first'), second: await makeCert(dir, 'second') };
  tls.setDefaultCACertificates([...tls.getCACertificates('default'), certs.first.cert, certs.second.cert]);
});
after(async () => {
  await everything?.close();
});

const yaml = (opts: { port?: number; tls?: boolean; plugins?: string } = {}) => `
listeners:
  - name: main
    port: ${opts.port ?? 0}
${opts.tls === false ? '' : '    tls: { cert: tls/server.crt, key: tls/server.key }'}
upstreams:
  everything: { url: ${everything.url}/mcp }
routes:
  - { listener: main, path: /mcp, upstream: everything, plugins: ${opts.plugins ?? authPlugins()} }
log: { level: info, pretty: false }
`;

async function withCertFiles(dir: string, cert: Cert): Promise<void> {
  await mkdir(path.join(dir, 'tls'), { recursive: true });
  // Written aside and renamed over, as certbot and Kubernetes do.
  await writeFile(path.join(dir, 'tls', 'server.key.new'), cert.key);
  await writeFile(path.join(dir, 'tls', 'server.crt.new'), cert.cert);
  await rename(path.join(dir, 'tls', 'server.key.new'), path.join(dir, 'tls', 'server.key'));
  await rename(path.join(dir, 'tls', 'server.crt.new'), path.join(dir, 'tls', 'server.crt'));
}

describe('TLS listeners', () => {
  test('an SDK client initializes and lists tools through a TLS listener with the token and jwt plugins', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-tls-gw-'));
    await withCertFiles(dir, certs.first);
    const gw = await startTestGateway(yaml(), { env: GATEWAY_ENV, dir });
    try {
      assert.match(gw.url(), /^https:\/\/127\.0\.0\.1:\d+$/);
      const port = Number(new URL(gw.url()).port);
      assert.equal(await servedFingerprint(port), certs.first.fingerprint);
      const client = await connectClient(`${gw.url()}/mcp`, { bearer: await tokenFor('acme') });
      try {
        const { tools } = await client.listTools();
        assert.ok(tools.some((t) => t.name === 'echo'), 'tools/list came through');
      } finally {
        await client.close();
      }
      // Without a token the jwt plugin refuses, over TLS as over HTTP.
      assert.equal((await fetch(`${gw.url()}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401);
      // Plugins are told the listener's origin is https.
      assert.equal(gw.gw.runtime().routesByListener.get('main')![0].info.listener.publicUrl, `https://127.0.0.1:${port}`);
      // Plain HTTP on a TLS port is not served.
      await assert.rejects(fetch(`http://127.0.0.1:${port}/mcp`));
    } finally {
      await gw.close();
    }
  });

  test('rotated certificate files: new connections get the new certificate, an open connection keeps working; a bad file keeps the last good one', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-tls-gw-'));
    await withCertFiles(dir, certs.first);
    const gw = await startTestGateway(yaml(), { env: GATEWAY_ENV, dir });
    const port = Number(new URL(gw.url()).port);
    const held = await connectTls(port);
    const client = await connectClient(`${gw.url()}/mcp`, { bearer: await tokenFor('acme') });
    try {
      assert.equal(held.fingerprint, certs.first.fingerprint);
      await client.listTools();

      await withCertFiles(dir, certs.second);
      await waitFor(async () => (await servedFingerprint(port)) === certs.second.fingerprint, 'the new certificate on a new connection');
      assert.ok(gw.logs().some((l) => l.msg === 'TLS certificate reloaded' && l.listener === 'main'));
      // The connection opened before the rotation still carries requests (401: it sends no token).
      assert.equal(await requestOn(held.socket), 'HTTP/1.1 401 Unauthorized');
      assert.equal(held.socket.getPeerCertificate().fingerprint256, certs.first.fingerprint);
      await client.listTools();

      // A broken certificate file: logged, and the last good certificate keeps serving.
      await writeFile(path.join(dir, 'tls', 'server.crt'), 'not a certificate');
      await waitFor(() => gw.logs().some((l) => l.msg === 'the changed TLS files cannot be used; the previous certificate keeps serving'), 'the bad file to be noticed');
      assert.equal(await servedFingerprint(port), certs.second.fingerprint);
      await client.listTools();
    } finally {
      held.socket.destroy();
      await client.close();
      await gw.close();
    }
  });

  test('a listener switched between plain HTTP and TLS on the same port by reload', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-tls-gw-'));
    await withCertFiles(dir, certs.first);
    const port = await freePort();
    const gw = await startTestGateway(yaml({ port, tls: false, plugins: '[]' }), { dir });
    const file = path.join(dir, 'gateway.yaml');
    const lists = async (url: string) => {
      const client = await connectClient(url);
      try {
        return (await client.listTools()).tools.length > 0;
      } finally {
        await client.close();
      }
    };
    try {
      assert.equal(await lists(`http://127.0.0.1:${port}/mcp`), true);
      await writeFile(file, yaml({ port, plugins: '[]' }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.equal(await lists(`https://127.0.0.1:${port}/mcp`), true);
      assert.equal(gw.url(), `https://127.0.0.1:${port}`);
      await writeFile(file, yaml({ port, tls: false, plugins: '[]' }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.equal(await lists(`http://127.0.0.1:${port}/mcp`), true);
      assert.ok(gw.logs().some((l) => l.msg === 'listener switched to TLS on the same socket'));
      assert.ok(gw.logs().some((l) => l.msg === 'listener switched to plain HTTP on the same socket'));
    } finally {
      await gw.close();
    }
  });

  test('a reload naming an unreadable certificate is refused with the field, and the listener keeps serving', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-tls-gw-'));
    await withCertFiles(dir, certs.first);
    const gw = await startTestGateway(yaml({ plugins: '[]' }), { dir });
    try {
      await writeFile(path.join(dir, 'gateway.yaml'), yaml({ plugins: '[]' }).replace('tls/server.crt', 'tls/missing.crt'));
      const result = await gw.gw.reload();
      assert.equal(result.ok, false);
      assert.match(result.error!, /listeners\[0\]\.tls\.cert: cannot read .*missing\.crt \(ENOENT\)/);
      const client = await connectClient(`${gw.url()}/mcp`);
      await client.close();
    } finally {
      await gw.close();
    }
  });
});

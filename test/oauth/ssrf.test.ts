/**
 * The SSRF guard and the guarded fetch behind Client ID Metadata Documents: which addresses are
 * refused, that the connection goes to the address that was checked, and the size, time and redirect
 * limits, against real local servers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { blockedAddressReason, SsrfRefusal, vetHost } from '../../gateway/oauth/clients/ssrf-guard.ts';
import { FetchProblem, guardedGet } from '../../gateway/oauth/clients/guarded-fetch.ts';

describe('blockedAddressReason', () => {
  const blocked: Array<[string, RegExp]> = [
    ['127.0.0.1', /loopback/],
    ['127.255.0.9', /loopback/],
    ['10.1.2.3', /private/],
    ['172.16.0.1', /private/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['169.254.169.254', /link-local/],
    ['0.0.0.0', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['fe80::1', /link-local/],
    ['fc00::1', /unique local/],
    ['fd12:3456::1', /unique local/],
    ['ff02::1', /multicast/],
    // The same IPv4 addresses written as IPv6.
    ['::ffff:127.0.0.1', /loopback/],
    ['::ffff:7f00:1', /loopback/],
    ['::ffff:169.254.169.254', /link-local/],
    ['::ffff:10.0.0.1', /private/],
    ['64:ff9b::a9fe:a9fe', /link-local/], // NAT64 of 169.254.169.254
    ['2002:7f00:1::', /loopback/], // 6to4 of 127.0.0.1
    ['::127.0.0.1', /IPv4-compatible/],
  ];
  for (const [address, reason] of blocked) {
    it(`refuses ${address}`, () => assert.match(blockedAddressReason(address) ?? 'allowed', reason));
  }
  for (const address of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808']) {
    it(`allows ${address}`, () => assert.equal(blockedAddressReason(address), undefined));
  }
});

describe('vetHost', () => {
  const refuse = { allowPrivateNetworks: false };
  it('refuses IP literals in private ranges, in URL spelling', async () => {
    for (const host of ['127.0.0.1', '10.0.0.7', '169.254.169.254', '[::1]', '[::ffff:127.0.0.1]']) {
      await assert.rejects(vetHost(host, refuse), SsrfRefusal, host);
    }
  });
  it('refuses a name that resolves to loopback (the system resolver answers localhost)', async () => {
    await assert.rejects(vetHost('localhost', refuse), (err: Error) => {
      assert.ok(err instanceof SsrfRefusal);
      assert.match(err.message, /^localhost resolves to (127\.0\.0\.1|::1), a loopback address/);
      return true;
    });
  });
  it('refuses a name when any one of its addresses is private', async () => {
    const resolve = async () => [{ address: '93.184.215.14', family: 4 }, { address: '10.0.0.5', family: 4 }];
    await assert.rejects(vetHost('mixed.example', { ...refuse, resolve }), /resolves to 10\.0\.0\.5, a private/);
  });
  it('answers the first address of a public name', async () => {
    const resolve = async () => [{ address: '2606:4700::1', family: 6 }, { address: '93.184.215.14', family: 4 }];
    assert.deepEqual(await vetHost('public.example', { ...refuse, resolve }), { address: '2606:4700::1', family: 6 });
  });
  it('lets private addresses through when allowPrivateNetworks is on', async () => {
    assert.deepEqual(await vetHost('127.0.0.1', { allowPrivateNetworks: true }), { address: '127.0.0.1', family: 4 });
  });
});

describe('guardedGet against local servers', () => {
  let server: http.Server;
  let base: string;
  let hangingSockets: Socket[] = [];
  const cut: { bigStream?: Promise<boolean> } = {};

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/doc') {
        res.setHeader('content-type', 'application/json');
        res.end('{"ok":true}');
      } else if (req.url === '/big-streamed') {
        // 1 MB written without Content-Length and never ended: only the client cutting the connection
        // finishes this exchange.
        cut.bigStream = new Promise((resolve) => res.on('close', () => resolve(!res.writableEnded)));
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(16_384, 0x20);
        for (let i = 0; i < 64; i++) res.write(chunk);
      } else if (req.url === '/big-declared') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000000' });
        res.write('{');
      } else if (req.url === '/truncated') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"client_id":', () => res.destroy());
      } else if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        res.end();
      } else if (req.url === '/never') {
        hangingSockets.push(req.socket); // no answer, ever
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const s of hangingSockets) s.destroy();
    hangingSockets = [];
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const opts = { timeoutMs: 10_000, maxBytes: 5_120, allowPrivateNetworks: true, accept: 'application/json' };

  it('fetches a small document', async () => {
    const res = await guardedGet(new URL(`${base}/doc`), opts);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), '{"ok":true}');
  });

  it('connects to the vetted address, not to whatever the name resolves to later', async () => {
    // The system resolver knows nothing of this name: the fetch can only succeed through the pinned address.
    let lookups = 0;
    const resolve = async () => { lookups++; return [{ address: '127.0.0.1', family: 4 }]; };
    const url = new URL(`${base}/doc`);
    url.hostname = 'pinned.invalid';
    const res = await guardedGet(url, { ...opts, resolve });
    assert.equal(res.status, 200);
    assert.equal(lookups, 1);
  });

  it('refuses loopback and http: when private networks are not allowed', async () => {
    const strict = { ...opts, allowPrivateNetworks: false };
    await assert.rejects(guardedGet(new URL(`${base}/doc`), strict), /only https: URLs/);
    await assert.rejects(guardedGet(new URL('https://127.0.0.1:1/doc'), strict), /127\.0\.0\.1 is a loopback address/);
    await assert.rejects(guardedGet(new URL('https://[::1]:1/doc'), strict), /::1 is a loopback address/);
    await assert.rejects(guardedGet(new URL('https://169.254.169.254/latest/meta-data/'), strict), /link-local/);
    await assert.rejects(guardedGet(new URL('https://[::ffff:127.0.0.1]/x'), strict), /loopback/);
    const toLoopback = async () => [{ address: '127.0.0.1', family: 4 }];
    await assert.rejects(guardedGet(new URL('https://rebind.example/doc'), { ...strict, resolve: toLoopback }), /rebind\.example resolves to 127\.0\.0\.1/);
  });

  it('cuts a 1 MB answer off at the size limit, and the server sees the connection closed', async () => {
    await assert.rejects(guardedGet(new URL(`${base}/big-streamed`), opts), (err: Error) => {
      assert.ok(err instanceof FetchProblem);
      assert.match(err.message, /larger than 5120 bytes/);
      return true;
    });
    assert.equal(await cut.bigStream, true, 'the connection closed before the server ended its answer');
  });

  it('refuses a declared Content-Length over the limit without reading the body', async () => {
    await assert.rejects(guardedGet(new URL(`${base}/big-declared`), opts), /larger than 5120 bytes \(Content-Length 1000000\)/);
  });

  it('gives up on a server that never answers, with the configured time limit in the message', async () => {
    await assert.rejects(guardedGet(new URL(`${base}/never`), { ...opts, timeoutMs: 200 }), (err: Error) => {
      assert.ok(err instanceof FetchProblem);
      assert.match(err.message, /no complete answer within 200 ms/);
      return true;
    });
  });

  it('refuses a document cut short by the server', async () => {
    await assert.rejects(guardedGet(new URL(`${base}/truncated`), opts), /closed the connection before the end of the document/);
  });

  it('does not follow redirects', async () => {
    await assert.rejects(guardedGet(new URL(`${base}/redirect`), opts), /answered 302 \(a redirect to http:\/\/169\.254\.169\.254\/latest\/meta-data\/\); redirects are not followed/);
  });

  it('reports a refused connection', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(guardedGet(new URL(`http://127.0.0.1:${port}/doc`), opts), /ECONNREFUSED/);
  });
});

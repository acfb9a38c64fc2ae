/**
 * The Node floor: the least a Node reverse proxy can do, run as its own process.
 *
 * `httpProxy.createProxyServer({ target })` inside a plain `http.createServer`, no parsing, no
 * plugins, no logging. One addition to the bare call: a keep-alive agent. Without it http-proxy-3
 * opens a fresh upstream connection per request (`agent: false`, `Connection: close`), which costs
 * far more CPU than anything a real gateway does per request and would make every other row look
 * cheap; a floor that any serious proxy beats is no floor.
 *
 * Usage: node bench/naive-proxy.ts <upstream url>. Prints `listening <port>` once ready.
 */
import { Agent, createServer } from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const target = process.argv[2];
if (!target) {
  process.stderr.write('usage: naive-proxy.ts <upstream url>\n');
  process.exit(2);
}

const proxy = createProxyServer({ target, agent: new Agent({ keepAlive: true, maxSockets: Infinity }) });
// http-proxy-3 throws on an error without a listener; answer 502 like any proxy would.
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});

const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.listen(Number(process.env.BENCH_PROXY_PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`listening ${port}\n`);
});

process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});

/**
 * What every request goes through on a listener before any route or plugin: framing hygiene,
 * DNS-rebinding checks (Host, Origin), CORS preflight, the gateway's authorization server and the
 * paths plugins serve (OAuth metadata); then the route's exchange (proxy.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { coreRefusal, sendRefusal } from './errors.ts';
import type { LiveListener } from './listeners.ts';
import { handleExchange, type ProxyEnv } from './proxy.ts';
import { checkRequestHeaders } from './request-hygiene.ts';
import type { Runtime } from './runtime.ts';

/** Listener-level checks, plugin-served paths, then the route's exchange. */
export async function entry(live: LiveListener, runtime: Runtime, req: IncomingMessage, res: ServerResponse, env: ProxyEnv, log: Logger): Promise<void> {
  // Before anything reads a header: a request whose headers can be read two ways is refused.
  const duplicate = checkRequestHeaders(req);
  if (duplicate) return sendRefusal(res, duplicate, null);
  const method = req.method ?? 'GET';
  // http-proxy-3 turns a chunked DELETE/OPTIONS into `content-length: 0` and forwards the body as a
  // second request on the upstream connection: refuse the framing outright.
  if ((method === 'DELETE' || method === 'OPTIONS') && req.headers['transfer-encoding'] !== undefined) {
    res.setHeader('connection', 'close');
    return sendRefusal(res, coreRefusal('GW_ERR_BAD_FRAMING', `${method} with Transfer-Encoding is not accepted; send Content-Length instead`), null);
  }
  const hostProblem = live.policy.checkHost(req);
  if (hostProblem) return sendRefusal(res, coreRefusal('GW_ERR_HOST_NOT_ALLOWED', hostProblem), null);
  // The gateway's own authorization server: OAuth endpoints with OAuth errors (never JSON-RPC) and their
  // own CORS, since OAuth clients in any browser origin call them (gateway/oauth/server.ts).
  const authorization = runtime.authorization;
  if (authorization?.owns(live.info.name, req.url)) {
    const leave = runtime.enter();
    res.once('close', leave);
    return authorization.handle(req, res);
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !live.policy.originAllowed(origin)) {
    return sendRefusal(res, coreRefusal('GW_ERR_ORIGIN_NOT_ALLOWED', `Origin "${origin}" is not allowed on this listener (listeners[].allowedOrigins)`), null);
  }
  if (method === 'OPTIONS') {
    // CORS preflight: answered here, before authentication, because browsers send no credentials.
    res.writeHead(204, origin ? live.policy.preflightHeaders(req) : { allow: 'GET, POST, DELETE, OPTIONS' });
    return void res.end();
  }
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://gateway.invalid');
  } catch {
    return sendRefusal(res, coreRefusal('GW_ERR_INVALID_REQUEST', 'the request target is not a valid URL'), null);
  }
  const served = runtime.served.get(live.info.name)?.get(url.pathname);
  if (served && (method === 'GET' || method === 'HEAD')) {
    try {
      const answer = await served(req);
      const body = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status, {
        'content-type': typeof answer.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
        'content-length': Buffer.byteLength(body),
        ...live.policy.corsHeaders(origin),
        ...answer.headers,
      });
      return void res.end(method === 'HEAD' ? undefined : body);
    } catch (err) {
      log.error({ err, path: url.pathname }, 'a plugin-served path failed');
      return sendRefusal(res, coreRefusal('GW_ERR_PLUGIN_FAILED', 'this document could not be produced; see the gateway log'), null);
    }
  }
  const route = runtime.match(live.info.name, url.pathname);
  if (!route) {
    return sendRefusal(res, coreRefusal('GW_ERR_NO_ROUTE', `no route for ${url.pathname} on this listener`), null, live.policy.corsHeaders(origin));
  }
  const leave = runtime.enter();
  res.once('close', leave);
  await handleExchange(route, req, res, url, env);
}

/**
 * One exchange through one route: the single place that fixes the order of the stages.
 *
 *   1. request hooks        (route order: the token plugin before jwt, jwt before anything tenant-aware)
 *   2. body                 (read under the route's cap, after auth so strangers cannot make us buffer;
 *                            parsed in 4 only when a plugin inspects messages)
 *   3. session              (open the sealed session id, check its owner; after 1 because the owner
 *                            check needs the verified principal)
 *   4. request messages     (each JSON-RPC message, each batch element; refusals answered locally)
 *   5. upstream call        (http-proxy-3; the client's credentials are never forwarded)
 *   6. response head hooks  (reverse order), then the body: SSE relayed event by event, JSON buffered
 *                            only when a plugin inspects messages, anything else piped untouched
 *   7. onDone               (always, once)
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type httpProxy from 'http-proxy-3';
import type { Logger } from 'pino';
import {
  PRINCIPAL, STREAM_DEADLINE, URL_TOKEN, type JSONRPCMessage, type JSONRPCRequest, type MessageContext,
  type Outcome, type Principal,
} from './contract.ts';
import { coreRefusal, refusalMessage, sendRefusal, type JsonRpcId, type Refusal } from './errors.ts';
import { GatewayExchange, HOP_BY_HOP } from './exchange.ts';
import { idKey, idOf, idOfBody, isMessage, isRequest, isResponse, parseBody } from './jsonrpc.ts';
import type { Pipeline } from './pipeline.ts';
import { ownerOf, SEAL_KIND, type SessionSealer } from './session-seal.ts';
import { PendingRequests, type SessionRegistry } from './sessions.ts';
import { HEARTBEAT, messageEvent, parseEvent, replaceEventData, SseFramer } from './sse.ts';
import type { CompiledRoute, UpstreamTarget } from './runtime.ts';

/** What the gateway reports to metrics; every method is optional so tests can pass nothing. */
export interface ExchangeObserver {
  /** `streamed`: an SSE response, whose lifetime is not a latency. */
  exchangeDone?(e: { route: string; listener: string; method: string; status: number; gatewayMs: number; upstreamMs?: number; streamed?: boolean }): void;
  message?(e: { route: string; direction: 'request' | 'response'; method: string; tool?: string }): void;
  refusal?(e: { route: string; plugin: string; code: string; tenant?: string }): void;
  upstreamError?(e: { upstream: string; kind: 'unreachable' | 'timeout' | 'reset' | 'too_large' }): void;
  streamOpened?(route: string): void;
  streamClosed?(route: string): void;
}

/** Services every exchange uses, owned by the running gateway. */
export interface ProxyEnv {
  proxy: httpProxy.ProxyServer;
  sealer: SessionSealer;
  sessions: SessionRegistry;
  observer: ExchangeObserver;
  log: Logger;
}

const SESSION_HEADER = 'mcp-session-id';
/** The query parameter carrying a sealed legacy endpoint (path and query of the upstream's endpoint). */
export const LEGACY_SESSION_PARAM = 'sessionId';
/**
 * Never let a client set these upstream: the gateway owns every `x-mcp-gateway-*` header (bridge
 * principal, signed identity) and whatever prefix an upstream's `identity.headerPrefix` names.
 */
const GATEWAY_HEADER_PREFIX = 'x-mcp-gateway-';

/**
 * The run a request belongs to, for http-proxy-3's events (which only hand back `req`). A symbol
 * property rather than a WeakMap: ephemeron entries for millions of short-lived requests are real
 * garbage-collector work.
 */
const RUN = Symbol('mcp-gateway.run');
type WithRun = IncomingMessage & { [RUN]?: ExchangeRun };
const runOf = (req: unknown): ExchangeRun | undefined => (req as WithRun)[RUN];

/** Wires http-proxy-3's events to the run that started each request. Call once per proxy server. */
export function attachProxyEvents(proxy: httpProxy.ProxyServer): void {
  proxy.on('proxyReq', (proxyReq, req) => runOf(req)?.onUpstreamRequest(proxyReq));
  proxy.on('proxyRes', (proxyRes, req) => {
    const run = runOf(req);
    if (run) void run.onUpstreamResponse(proxyRes);
    else proxyRes.resume();
  });
  // http-proxy-3 throws when no error listener exists; errors are handled per call, this is a backstop.
  proxy.on('error', (err, req, res) => {
    const run = runOf(req);
    if (run) run.onUpstreamError(err as NodeJS.ErrnoException);
    else if (res && 'writeHead' in res) sendRefusal(res as ServerResponse, coreRefusal('GW_ERR_UPSTREAM_UNREACHABLE', 'upstream error'), null);
  });
}

export function handleExchange(route: CompiledRoute, req: IncomingMessage, res: ServerResponse, url: URL, env: ProxyEnv): Promise<void> {
  const run = new ExchangeRun(route, req, res, url, env);
  (req as WithRun)[RUN] = run;
  return run.run();
}

class ExchangeRun {
  readonly route: CompiledRoute;
  readonly pipeline: Pipeline;
  readonly upstream: UpstreamTarget;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly env: ProxyEnv;
  readonly x: GatewayExchange;

  /** The request body as received (POST), or undefined. */
  body: Buffer | undefined;
  /** Lone request's id, for error answers. */
  requestId: JsonRpcId = null;
  #pending: PendingRequests | undefined;
  /** Requests forwarded upstream by this exchange, so responses know what they answer. */
  get pending(): PendingRequests {
    this.#pending ??= new PendingRequests(256);
    return this.#pending;
  }
  /** Answers the gateway made itself for some messages of a batch; merged into the response. */
  localAnswers: JSONRPCMessage[] = [];
  /** Legacy POST: the client-facing session id (the sealed endpoint). */
  legacySessionId: string | undefined;
  /** Upstream path and query, decided in stage 3 (a legacy POST's comes from its sealed endpoint). */
  upstreamPathAndQuery = '';
  owner: Buffer | undefined;

  outcome: Outcome = { status: 0, bytesIn: 0, bytesOut: 0, durationMs: 0, messageRefusals: [] };
  upstreamSentAt = 0n;
  /** Run once when the exchange ends: timers to clear, deadlines to cancel. */
  cleanups: Array<() => void> = [];
  upstreamReq: import('node:http').ClientRequest | undefined;
  finished = false;
  streamed = false;
  timedOut: 'connect' | 'firstByte' | 'total' | 'idle' | undefined;

  constructor(route: CompiledRoute, req: IncomingMessage, res: ServerResponse, url: URL, env: ProxyEnv) {
    this.route = route;
    this.pipeline = route.pipeline;
    this.upstream = route.upstream;
    this.req = req;
    this.res = res;
    this.env = env;
    const id = typeof req.headers['x-request-id'] === 'string' && req.headers['x-request-id'].length <= 128
      ? req.headers['x-request-id']
      : randomUUID();
    this.x = new GatewayExchange({ id, route: route.info, req, url, log: env.log });
    res.once('close', () => this.finish());
  }

  async run(): Promise<void> {
    try {
      // 1. Request hooks. (Each stage is skipped outright when it has nothing to do: an await per
      //    stage per request is measurable on a plugin-free route.)
      if (this.pipeline.hasRequestHooks) {
        const refused = await this.pipeline.request(this.x);
        if (refused) return this.refuse(refused);
      }

      // 2. Body: read under the cap (not parsed yet), so that any refusal from here on can carry the
      //    request's JSON-RPC id.
      if (this.hasBody()) {
        const bodyRefusal = await this.readBody();
        if (bodyRefusal) return this.refuse(bodyRefusal);
      }

      // 3. Session: open the sealed id, check the owner.
      const sessionRefusal = this.openSession();
      if (sessionRefusal) return this.refuse(sessionRefusal);

      // 4. Request messages.
      if (this.body && this.req.method === 'POST') {
        const answered = await this.runRequestMessages();
        if (answered) return;
      }

      // 5. Upstream call (the response arrives in onUpstreamResponse).
      this.callUpstream();
    } catch (err) {
      this.x.log.error({ err }, 'exchange failed');
      this.refuse(coreRefusal('GW_ERR_PLUGIN_FAILED', `the gateway failed while handling this request (exchange ${this.x.id})`));
    }
  }

  // ── stage 2 ──────────────────────────────────────────────────────────────────────────────────────

  hasBody(): boolean {
    const h = this.req.headers;
    return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
  }

  async readBody(): Promise<Refusal | undefined> {
    const { req } = this;
    const limit = this.route.config.maxRequestBytes;
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) return this.tooLarge(limit);
    const chunks: Buffer[] = [];
    let size = 0;
    const ok = await new Promise<boolean>((resolve) => {
      const onData = (c: Buffer) => {
        size += c.length;
        if (size > limit) {
          req.off('data', onData);
          resolve(false);
          return;
        }
        chunks.push(c);
      };
      req.on('data', onData);
      req.once('end', () => resolve(true));
      req.once('error', () => resolve(false));
      req.once('close', () => resolve(size <= limit && req.complete));
    });
    this.outcome.bytesIn = size;
    if (!ok) {
      if (size > limit) return this.tooLarge(limit);
      return coreRefusal('GW_ERR_BAD_FRAMING', 'the request body ended early');
    }
    this.body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
    return undefined;
  }

  tooLarge(limit: number): Refusal {
    // The rest of the body is not read: close the connection rather than drain it.
    this.res.setHeader('connection', 'close');
    return coreRefusal('GW_ERR_BODY_TOO_LARGE', `the request body is larger than this route accepts (${limit} bytes)`);
  }

  // ── stage 3 ──────────────────────────────────────────────────────────────────────────────────────

  openSession(): Refusal | undefined {
    const principal = this.x.get(PRINCIPAL);
    this.owner = ownerOf(principal);
    const binding = this.route.info.name;
    const headerValue = this.req.headers[SESSION_HEADER];
    this.upstreamPathAndQuery = this.route.upstreamPath(this.x.url);

    const legacyParam = this.x.url.search.includes(LEGACY_SESSION_PARAM) ? this.x.url.searchParams.get(LEGACY_SESSION_PARAM) : null;
    if (legacyParam !== null && this.req.method === 'POST') {
      const opened = this.env.sealer.open(SEAL_KIND.legacyEndpoint, legacyParam, this.owner, binding);
      if (!opened || !opened.ownerMatches) return this.sessionNotFound();
      this.x.transport = 'sse';
      this.x.sessionId = legacyParam;
      this.legacySessionId = legacyParam;
      this.upstreamPathAndQuery = opened.payload;
      this.env.sessions.touched(legacyParam);
      return undefined;
    }
    if (typeof headerValue === 'string') {
      const opened = this.env.sealer.open(SEAL_KIND.streamableSession, headerValue, this.owner, binding);
      if (!opened || !opened.ownerMatches) return this.sessionNotFound();
      this.x.transport = 'streamable-http';
      this.x.sessionId = headerValue;
      this.x.upstreamHeaders[SESSION_HEADER] = opened.payload;
      this.env.sessions.touched(headerValue);
    } else if (this.req.method === 'POST') {
      this.x.transport = 'streamable-http';
    }
    return undefined;
  }

  sessionNotFound(): Refusal {
    // The same answer for an unknown, ended, tampered or someone else's session: nothing to probe.
    return coreRefusal('GW_ERR_SESSION_NOT_FOUND', 'Session not found: start a new session (initialize again)');
  }

  // ── stage 4 ──────────────────────────────────────────────────────────────────────────────────────

  /** Returns true when the exchange was fully answered by the gateway. */
  async runRequestMessages(): Promise<boolean> {
    const body = this.body;
    if (!body || this.req.method !== 'POST') return false;
    if (!this.pipeline.inspectsRequests) {
      // Not inspected: forwarded byte for byte. Remember requests only where a response hook needs them.
      if (this.pipeline.inspectsResponses || this.legacySessionId) this.rememberRequests(body);
      return false;
    }
    const parsed = parseBody(body);
    if (!parsed.ok) {
      // Never forward what the plugins could not inspect: a malformed body would bypass them (and one
      // malformed POST kills @falkordb/mcpserver).
      if (parsed.reason === 'parse') this.refuse(coreRefusal('GW_ERR_PARSE', `Parse error: the body is not valid JSON (${parsed.detail})`));
      else this.refuse(coreRefusal('GW_ERR_INVALID_REQUEST', `Invalid Request: ${parsed.detail}`));
      return true;
    }
    const forward: JSONRPCMessage[] = [];
    const answers: JSONRPCMessage[] = [];
    let changed = false;
    let loneRefusal: Refusal | undefined;
    const framing = parsed.batch ? 'batch' : 'json';
    for (const raw of parsed.messages) {
      if (!isMessage(raw)) {
        // Same reasoning as above, per element: a batch must not smuggle what plugins cannot read.
        answers.push(refusalMessage(coreRefusal('GW_ERR_INVALID_REQUEST', 'Invalid Request: not a JSON-RPC 2.0 message'), idOf(raw)));
        changed = true;
        continue;
      }
      this.observe('request', raw);
      const out = await this.pipeline.message(raw, this.x, { direction: 'request', framing });
      if (out.kind === 'forward') {
        if (out.message !== raw) changed = true;
        forward.push(out.message);
        if (isRequest(out.message)) this.trackRequest(out.message);
      } else {
        changed = true;
        if (out.kind === 'reject') {
          this.noteMessageRefusal(raw, out.refusal);
          if (!parsed.batch) loneRefusal = out.refusal;
          if (isRequest(raw)) answers.push(refusalMessage(out.refusal, raw.id));
        }
      }
    }
    if (!parsed.batch) this.requestId = idOf(parsed.messages[0]);

    if (forward.length === 0) {
      this.answerLocally(answers, parsed.batch, loneRefusal);
      return true;
    }
    this.localAnswers = answers;
    if (changed) {
      this.body = Buffer.from(JSON.stringify(parsed.batch ? forward : forward[0]));
    }
    return false;
  }

  rememberRequests(body: Buffer): void {
    const parsed = parseBody(body);
    if (!parsed.ok) return;
    if (!parsed.batch) this.requestId = idOf(parsed.messages[0]);
    for (const m of parsed.messages) if (isRequest(m)) this.trackRequest(m);
  }

  trackRequest(m: JSONRPCRequest): void {
    const key = idKey(m.id);
    if (this.legacySessionId) this.env.sessions.legacy(this.legacySessionId)?.pending.add(key, m);
    else this.pending.add(key, m);
  }

  /** Every message was handled by the gateway: answer without calling the upstream. */
  answerLocally(answers: JSONRPCMessage[], batch: boolean, lone: Refusal | undefined): void {
    if (this.legacySessionId) {
      // Legacy transport: answers belong on the session's GET stream, the POST only gets 202.
      const stream = this.env.sessions.legacy(this.legacySessionId);
      if (stream) {
        for (const a of answers) stream.send(JSON.stringify(a));
        this.writeBody(202, { 'content-type': 'text/plain' }, 'Accepted');
        return;
      }
    }
    if (answers.length === 0) {
      this.writeBody(202, {}, '');
      return;
    }
    if (lone) {
      this.outcome.refusal = { code: lone.code, plugin: lone.plugin };
      sendRefusal(this.res, lone, this.requestId, this.corsHeaders());
      return;
    }
    this.writeBody(200, { 'content-type': 'application/json' }, JSON.stringify(batch ? answers : answers[0]));
  }

  // ── stage 5 ──────────────────────────────────────────────────────────────────────────────────────

  callUpstream(): void {
    const headers = this.x.upstreamHeaders;
    for (const h of Object.keys(headers)) {
      if (h.startsWith(GATEWAY_HEADER_PREFIX) || (this.upstream.identityPrefix && h.startsWith(this.upstream.identityPrefix))) delete headers[h];
    }
    // Parsed bodies must arrive uncompressed; SSE must never be compressed.
    headers['accept-encoding'] = 'identity';
    headers['x-request-id'] = this.x.id;
    const principal = this.x.get(PRINCIPAL);
    Object.assign(headers, this.upstream.requestHeaders(principal));
    if (this.body) {
      headers['content-length'] = String(this.body.length);
      delete headers['transfer-encoding'];
    }
    // http-proxy-3 copies req.headers; give it exactly what the upstream may see.
    (this.req as { headers: IncomingMessage['headers'] }).headers = headers;
    this.upstreamSentAt = process.hrtime.bigint();
    const t = this.upstream.timeouts;
    if (t.total > 0) this.after(t.total, () => this.onTimeout('total'));
    const firstByte = this.legacySessionId && this.route.config.legacyPostTimeout > 0
      ? (t.firstByte > 0 ? Math.min(t.firstByte, this.route.config.legacyPostTimeout) : this.route.config.legacyPostTimeout)
      : t.firstByte;
    if (firstByte > 0) this.after(firstByte, () => { if (!this.res.headersSent) this.onTimeout('firstByte'); });

    this.env.proxy.web(this.req, this.res, {
      target: this.upstream.origin + this.upstreamPathAndQuery,
      ignorePath: true,
      changeOrigin: true,
      xfwd: true,
      selfHandleResponse: true,
      agent: this.upstream.agent,
      buffer: this.body ? bodySource(this.body) : undefined,
    }, (err) => this.onUpstreamError(err as NodeJS.ErrnoException));
  }

  onUpstreamRequest(proxyReq: import('node:http').ClientRequest): void {
    this.upstreamReq = proxyReq;
    const connect = this.upstream.timeouts.connect;
    const socket = proxyReq.socket;
    if (connect > 0 && socket && (socket as { connecting?: boolean }).connecting) {
      const timer = this.after(connect, () => this.onTimeout('connect'));
      socket.once('connect', () => clearTimeout(timer));
    }
  }

  onTimeout(kind: 'connect' | 'firstByte' | 'total' | 'idle'): void {
    if (this.finished) return;
    this.timedOut = kind;
    this.env.observer.upstreamError?.({ upstream: this.upstream.name, kind: 'timeout' });
    if (!this.res.headersSent) {
      this.upstreamReq?.destroy();
      this.refuse(coreRefusal('GW_ERR_UPSTREAM_TIMEOUT', timeoutMessage(kind, this.upstream)));
    } else {
      // A response is under way: it cannot be replaced, only ended.
      this.upstreamReq?.destroy();
      this.res.end();
    }
  }

  onUpstreamError(err: NodeJS.ErrnoException): void {
    if (this.finished || this.res.headersSent) {
      if (!this.res.writableEnded) this.res.end();
      return;
    }
    if (this.timedOut) return;
    // (req.destroyed is true once its body was read: only the response tells whether the client left.)
    if (this.res.destroyed) return;
    this.env.observer.upstreamError?.({ upstream: this.upstream.name, kind: err.code === 'ECONNRESET' ? 'reset' : 'unreachable' });
    this.x.log.warn({ err: { code: err.code, message: err.message }, upstream: this.upstream.name }, 'upstream unreachable');
    this.refuse(coreRefusal('GW_ERR_UPSTREAM_UNREACHABLE',
      `the upstream "${this.upstream.name}" could not be reached (${err.code ?? err.message}); try again later`));
  }

  // ── stage 6 ──────────────────────────────────────────────────────────────────────────────────────

  async onUpstreamResponse(proxyRes: IncomingMessage): Promise<void> {
    this.outcome.upstreamMs = Number(process.hrtime.bigint() - this.upstreamSentAt) / 1e6;
    if (this.finished || this.timedOut) {
      proxyRes.destroy();
      return;
    }
    const headers = responseHeaders(proxyRes);
    this.sealResponseSession(headers);
    const head = { status: proxyRes.statusCode ?? 502, headers };
    let refused: Refusal | undefined;
    // (A throwing hook is already a GW_ERR_PLUGIN_FAILED refusal from the pipeline.)
    if (this.pipeline.hasResponseHooks) refused = await this.pipeline.response(head, this.x);
    if (refused) {
      proxyRes.destroy();
      return this.refuse(refused);
    }
    Object.assign(head.headers, this.corsHeaders());
    const type = String(head.headers['content-type'] ?? '').toLowerCase();
    if (type.startsWith('text/event-stream')) return this.relaySse(proxyRes, head.status, head.headers);
    if (type.includes('json') && (this.pipeline.inspectsResponses || this.localAnswers.length > 0)) {
      return this.relayJson(proxyRes, head.status, head.headers);
    }
    if (head.status === 202 && this.localAnswers.length > 0) {
      // Only notifications went upstream; the answers the gateway made still need a body.
      proxyRes.resume();
      return this.writeBody(200, { ...head.headers, 'content-type': 'application/json' }, JSON.stringify(this.localAnswers));
    }
    this.res.writeHead(head.status, head.headers);
    this.outcome.status = head.status;
    proxyRes.on('data', (c: Buffer) => { this.outcome.bytesOut += c.length; });
    // An upstream that dies mid-body: the client must see a broken response, not wait forever.
    proxyRes.once('close', () => { if (!proxyRes.complete) this.res.destroy(); });
    proxyRes.pipe(this.res);
  }

  /** Replaces the upstream's session id with a sealed one, bound to the caller. */
  sealResponseSession(headers: OutgoingHttpHeaders): void {
    const upstreamId = headers[SESSION_HEADER];
    if (typeof upstreamId !== 'string') return;
    const sealed = this.x.sessionId && this.x.upstreamHeaders[SESSION_HEADER] === upstreamId
      ? this.x.sessionId
      : this.env.sealer.seal(SEAL_KIND.streamableSession, upstreamId, this.owner!, this.route.info.name);
    headers[SESSION_HEADER] = sealed;
    if (sealed !== this.x.sessionId) {
      this.x.sessionId = sealed;
      this.registerSession(sealed, 'streamable-http', () => this.deleteUpstreamSession(upstreamId), upstreamId);
    }
  }

  registerSession(id: string, transport: 'streamable-http' | 'sse', endUpstream?: () => Promise<void>, upstreamId?: string): void {
    const p = this.x.get(PRINCIPAL);
    this.env.sessions.opened(id, {
      id, tenant: p?.tenant, subject: p?.subject, route: this.route.info.name,
      upstream: this.upstream.name, transport,
    }, endUpstream, upstreamId);
  }

  /** Used by the admin API to end a session at the upstream. */
  async deleteUpstreamSession(upstreamId: string): Promise<void> {
    const headers: Record<string, string> = { [SESSION_HEADER]: upstreamId, ...this.upstream.requestHeaders(this.x.get(PRINCIPAL)) };
    const version = this.req.headers['mcp-protocol-version'];
    if (typeof version === 'string') headers['mcp-protocol-version'] = version;
    await fetch(this.upstream.origin + this.route.upstreamPath(new URL(this.route.info.path, 'http://x')), {
      method: 'DELETE', headers, signal: AbortSignal.timeout(5000),
    }).then((r) => r.body?.cancel());
  }

  relaySse(proxyRes: IncomingMessage, status: number, headers: OutgoingHttpHeaders): void {
    const { res, route } = this;
    delete headers['content-length'];
    delete headers['content-encoding'];
    headers['x-accel-buffering'] = 'no';
    if (!headers['cache-control']) headers['cache-control'] = 'no-cache, no-transform';
    res.writeHead(status, headers);
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    this.outcome.status = status;
    this.streamed = true;
    this.env.observer.streamOpened?.(route.info.name);
    const sessionId = this.x.sessionId;
    if (sessionId && this.req.method === 'GET') this.env.sessions.attachStream(sessionId, res);

    const framer = new SseFramer();
    const inspect = this.pipeline.inspectsResponses;
    // Whether this could be a legacy stream whose first event names the POST endpoint.
    let awaitingEndpoint = this.req.method === 'GET' && !this.x.sessionId;
    let legacyId: string | undefined;
    let busy = 0;
    const write = (text: string) => {
      if (text.length === 0 || res.writableEnded) return;
      this.outcome.bytesOut += Buffer.byteLength(text);
      heartbeat?.refresh();
      if (!res.write(text)) pause();
    };
    const pause = () => {
      busy++;
      proxyRes.pause();
      res.once('drain', resume);
    };
    const resume = () => {
      if (--busy === 0) proxyRes.resume();
    };
    const hb = route.config.heartbeat;
    const heartbeat = hb > 0 ? setInterval(() => {
      // Only between events: a comment inside a half-written event would corrupt it.
      if (framer.pendingLength === 0 && busy === 0 && !res.writableEnded) {
        res.write(HEARTBEAT);
        this.outcome.bytesOut += HEARTBEAT.length;
      }
    }, hb) : undefined;
    heartbeat?.unref();
    const idleMs = this.upstream.timeouts.idle;
    const idle = idleMs > 0 ? this.after(idleMs, () => this.onTimeout('idle')) : undefined;
    const deadline = this.x.get(STREAM_DEADLINE);
    if (deadline !== undefined) {
      this.cleanups.push(runAt(deadline, () => {
        this.x.log.info('stream closed: the credential that opened it has expired');
        proxyRes.destroy();
        res.end();
      }));
    }
    if (heartbeat) this.cleanups.push(() => clearInterval(heartbeat));
    // Answers the gateway made for refused elements of a batch go first.
    for (const a of this.localAnswers) write(messageEvent(JSON.stringify(a)));

    const handleBlock = async (block: string): Promise<string> => {
      const fields = parseEvent(block);
      if (awaitingEndpoint && fields.event === 'endpoint' && fields.data !== undefined) {
        awaitingEndpoint = false;
        const rewritten = this.rewriteEndpoint(fields.data);
        legacyId = rewritten.sessionId;
        return replaceEventData(block, rewritten.uri);
      }
      if (fields.data === undefined || fields.data === '') return block;
      awaitingEndpoint = false;
      if (fields.event !== undefined && fields.event !== 'message') return block;
      if (!inspect) {
        if (legacyId) this.forgetAnswered(fields.data, legacyId);
        return block;
      }
      return this.inspectSseMessage(block, fields.data, legacyId);
    };

    const processBlocks = async (blocks: string[]) => {
      for (const b of blocks) write(await handleBlock(b));
    };
    let chain: Promise<void> = Promise.resolve();
    proxyRes.on('data', (chunk: Buffer) => {
      idle?.refresh();
      const blocks = framer.push(chunk);
      if (blocks.length === 0) return;
      if (!inspect && !awaitingEndpoint && !legacyId) {
        // Fast path: nothing to look at, forward complete events as they are.
        for (const b of blocks) write(b);
        return;
      }
      busy++;
      proxyRes.pause();
      chain = chain.then(() => processBlocks(blocks)).catch((err) => {
        this.x.log.error({ err }, 'SSE event handling failed; closing the stream');
        proxyRes.destroy();
        res.end();
      }).finally(resume);
    });
    proxyRes.once('end', () => {
      void chain.then(() => {
        write(framer.flush());
        res.end();
      });
    });
    proxyRes.once('error', () => res.end());
    proxyRes.once('aborted', () => res.end());
    res.once('close', () => {
      proxyRes.destroy();
      if (sessionId) this.env.sessions.detachStream(sessionId, res);
      if (legacyId) {
        this.env.sessions.unregisterLegacy(legacyId);
        this.env.sessions.detachStream(legacyId, res);
      }
      this.env.observer.streamClosed?.(route.info.name);
    });
  }

  /**
   * The legacy `endpoint` event names the URI the client must POST to. The client resolves it against
   * its own URL, so it must point back at this gateway, under this route, with the upstream's path and
   * query sealed in (the client never learns them) and, for URL-token clients, their token.
   */
  rewriteEndpoint(data: string): { uri: string; sessionId: string } {
    const upstreamUrl = new URL(data.trim(), this.upstream.origin + this.upstreamPathAndQuery);
    const sealed = this.env.sealer.seal(SEAL_KIND.legacyEndpoint, upstreamUrl.pathname + upstreamUrl.search, this.owner!, this.route.info.name);
    const clientPath = this.route.clientPath(upstreamUrl.pathname);
    const query = new URLSearchParams({ [LEGACY_SESSION_PARAM]: sealed });
    const token = this.x.get(URL_TOKEN);
    if (token) query.set(token.param, token.value);
    const uri = `${clientPath}?${query.toString()}`;
    this.x.transport = 'sse';
    this.x.sessionId = sealed;
    this.registerSession(sealed, 'sse');
    this.env.sessions.attachStream(sealed, this.res);
    const res = this.res;
    this.env.sessions.registerLegacy(sealed, {
      pending: new PendingRequests(1000),
      send: (json) => {
        if (!res.writableEnded) res.write(messageEvent(json));
      },
    });
    return { uri, sessionId: sealed };
  }

  /** Drops the remembered request a legacy response answers (response hooks are not on this route). */
  forgetAnswered(data: string, legacyId: string): void {
    const stream = this.env.sessions.legacy(legacyId);
    if (!stream) return;
    try {
      const id = idOf(JSON.parse(data));
      if (id !== null) stream.pending.take(idKey(id));
    } catch {
      // Not JSON: nothing was remembered for it.
    }
  }

  async inspectSseMessage(block: string, data: string, legacyId: string | undefined): Promise<string> {
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      return block; // Not JSON: not a JSON-RPC message; forwarded untouched.
    }
    const pending = legacyId ? this.env.sessions.legacy(legacyId)?.pending : this.pending;
    const list = Array.isArray(value) ? value : [value];
    const out: JSONRPCMessage[] = [];
    let changed = false;
    for (const m of list) {
      const result = await this.inspectResponseMessage(m, 'sse', pending);
      if (result !== m) changed = true;
      if (result) out.push(result);
    }
    if (!changed) return block;
    if (out.length === 0) return '';
    return replaceEventData(block, JSON.stringify(Array.isArray(value) ? out : out[0]));
  }

  /** Runs response hooks on one upstream message; returns what to send (undefined = nothing). */
  async inspectResponseMessage(m: unknown, framing: MessageContext['framing'], pending: PendingRequests | undefined): Promise<JSONRPCMessage | undefined> {
    if (!isMessage(m)) return m as JSONRPCMessage;
    const id = isResponse(m) ? idOf(m) : null;
    const request = id !== null ? pending?.take(idKey(id)) : undefined;
    this.observe('response', m, request);
    const out = await this.pipeline.message(m, this.x, { direction: 'response', framing, request });
    if (out.kind === 'forward') return out.message;
    if (out.kind === 'drop') return undefined;
    this.noteMessageRefusal(m, out.refusal);
    return id !== null || isRequest(m) ? refusalMessage(out.refusal, idOf(m)) : undefined;
  }

  relayJson(proxyRes: IncomingMessage, status: number, headers: OutgoingHttpHeaders): void {
    const limit = this.route.config.maxResponseBytes;
    const chunks: Buffer[] = [];
    let size = 0;
    proxyRes.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        proxyRes.destroy();
        this.env.observer.upstreamError?.({ upstream: this.upstream.name, kind: 'too_large' });
        this.refuse(coreRefusal('GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE', `the upstream's response is larger than this route's maxResponseBytes (${limit})`));
        return;
      }
      chunks.push(c);
    });
    proxyRes.once('close', () => {
      if (!proxyRes.complete && size <= limit && !this.finished) {
        this.refuse(coreRefusal('GW_ERR_UPSTREAM_UNREACHABLE', 'the upstream closed the connection before its answer was complete'));
      }
    });
    proxyRes.once('end', () => {
      if (size > limit || this.finished) return;
      void this.finishJson(Buffer.concat(chunks), status, headers).catch((err) => {
        this.x.log.error({ err }, 'response handling failed');
        this.refuse(coreRefusal('GW_ERR_PLUGIN_FAILED', `the gateway failed while handling the response (exchange ${this.x.id})`));
      });
    });
  }

  async finishJson(body: Buffer, status: number, headers: OutgoingHttpHeaders): Promise<void> {
    let value: unknown;
    if (body.length === 0) {
      value = undefined;
    } else {
      try {
        value = JSON.parse(body.toString('utf8'));
      } catch {
        // Plugins must see every message; an unreadable body could carry anything.
        return this.refuse(coreRefusal('GW_ERR_UPSTREAM_BAD_RESPONSE', 'the upstream answered with malformed JSON'));
      }
    }
    const isBatch = Array.isArray(value);
    const list = value === undefined ? [] : isBatch ? (value as unknown[]) : [value];
    const out: JSONRPCMessage[] = [];
    let changed = false;
    for (const m of list) {
      const r = this.pipeline.inspectsResponses ? await this.inspectResponseMessage(m, isBatch ? 'batch' : 'json', this.pending) : (m as JSONRPCMessage);
      if (r !== m) changed = true;
      if (r) out.push(r);
    }
    delete headers['content-length'];
    delete headers['content-encoding'];
    if (!changed && this.localAnswers.length === 0) {
      // Nothing was replaced or dropped: the upstream's own bytes go out, no re-serialization.
      return this.writeBody(status, headers, body);
    }
    out.push(...this.localAnswers);
    const text = out.length === 0 ? '' : JSON.stringify(isBatch || out.length > 1 ? out : out[0]);
    this.writeBody(text === '' && status === 200 ? 202 : status, headers, text);
  }

  // ── helpers ──────────────────────────────────────────────────────────────────────────────────────

  observe(direction: 'request' | 'response', m: JSONRPCMessage, request?: JSONRPCRequest): void {
    if (!this.env.observer.message) return;
    const method = (m as { method?: string }).method ?? request?.method ?? 'response';
    const params = ((m as { params?: { name?: unknown } }).params ?? request?.params) as { name?: unknown } | undefined;
    const tool = method === 'tools/call' && typeof params?.name === 'string' ? params.name : undefined;
    this.env.observer.message({ route: this.route.info.name, direction, method, tool });
  }

  /** A timer cleared when the exchange ends. */
  after(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setTimeout(fn, ms);
    this.cleanups.push(() => clearTimeout(timer));
    return timer;
  }

  noteMessageRefusal(m: unknown, r: Refusal): void {
    const method = (m as { method?: unknown }).method;
    this.outcome.messageRefusals.push({ id: idOf(m), method: typeof method === 'string' ? method : undefined, code: r.code, plugin: r.plugin });
    this.env.observer.refusal?.({ route: this.route.info.name, plugin: r.plugin ?? 'gateway', code: r.code, tenant: this.x.get(PRINCIPAL)?.tenant });
  }

  writeBody(status: number, headers: OutgoingHttpHeaders, body: string | Buffer): void {
    if (this.res.headersSent || this.res.destroyed) return;
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    this.res.writeHead(status, { ...headers, ...this.corsHeaders(), 'content-length': buf.length });
    this.outcome.status = status;
    this.outcome.bytesOut += buf.length;
    this.res.end(buf);
  }

  refuse(r: Refusal): void {
    if (this.res.headersSent) {
      if (!this.res.writableEnded) this.res.end();
      return;
    }
    this.outcome.refusal = { code: r.code, plugin: r.plugin };
    this.outcome.status = r.status;
    this.env.observer.refusal?.({ route: this.route.info.name, plugin: r.plugin ?? 'gateway', code: r.code, tenant: this.x.get(PRINCIPAL)?.tenant });
    const id = this.requestId ?? idOfBody(this.body);
    sendRefusal(this.res, r, id, this.corsHeaders());
  }

  corsHeaders(): Record<string, string> {
    return this.route.corsHeaders(this.req.headers.origin);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const c of this.cleanups) c();
    // An unfinished upstream request dies with the exchange (the client went away, a timeout fired).
    // A finished one must not be touched: destroying it would close its keep-alive socket.
    if (this.upstreamReq && !this.res.writableFinished) this.upstreamReq.destroy();
    const o = this.outcome;
    if (!this.res.writableFinished && o.status !== 0 && !o.error) {
      o.error = new Error('the client went away before the response was complete');
    }
    if (o.status === 0 && this.res.headersSent) o.status = this.res.statusCode;
    o.durationMs = Number(process.hrtime.bigint() - this.x.startedAt) / 1e6;
    this.pipeline.done(this.x, o);
    this.env.observer.exchangeDone?.({
      route: this.route.info.name, listener: this.route.info.listener.name, method: this.x.method,
      status: o.status, gatewayMs: o.durationMs - (o.upstreamMs ?? 0), upstreamMs: o.upstreamMs, streamed: this.streamed,
    });
  }
}

/**
 * The already-read request body as http-proxy-3's `buffer` option. The proxy only ever calls
 * `buffer.pipe(upstreamRequest)`, so a one-write source does the job of a Readable without one being
 * built per request.
 */
function bodySource(body: Buffer): Readable {
  return { pipe: (dest: NodeJS.WritableStream) => dest.end(body) } as unknown as Readable;
}

/** Node timers overflow past ~24.8 days (a 30-day token's expiry): re-arm until the moment comes. */
function runAt(epochMs: number, fn: () => void): () => void {
  const MAX = 2 ** 31 - 1;
  let timer: NodeJS.Timeout;
  const arm = () => {
    const left = epochMs - Date.now();
    timer = left > MAX ? setTimeout(arm, MAX) : setTimeout(fn, Math.max(0, left));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}

function timeoutMessage(kind: string, upstream: UpstreamTarget): string {
  const what: Record<string, string> = {
    connect: 'connecting to', firstByte: 'waiting for the first byte from', total: 'the whole exchange with', idle: 'silence from',
  };
  return `timed out ${what[kind] ?? ''} the upstream "${upstream.name}" (timeouts.${kind}); the call may still run upstream`;
}

/** The upstream's response headers minus hop-by-hop ones. */
function responseHeaders(proxyRes: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = new Set(String(proxyRes.headers.connection ?? '').toLowerCase().split(',').map((h) => h.trim()));
  for (const [k, v] of Object.entries(proxyRes.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  return out;
}

export type { Principal };

/**
 * One stdio MCP server process shared by the MCP sessions of one pool key, and the JSON-RPC
 * multiplexer in front of it.
 *
 * The process sees ONE client (the gateway): it is initialized once, with the first session's
 * `initialize` params, and every later session is answered from the cached result. The multiplexer
 * keeps the sessions apart:
 * - client request ids are replaced by a per-process counter and mapped back on the response, so two
 *   sessions both sending id 1 never collide; progress tokens are replaced the same way;
 * - server→client requests (sampling, elicitation, roots) get a fresh id per session and are mapped
 *   back when the client answers; `ping` from the server is answered here;
 * - list_changed notifications go to every session, `resources/updated` to the sessions subscribed to
 *   that uri, progress to the session owning the token, `cancelled` to the session that got the request;
 * - anything else the server sends unprompted (log messages, server requests) carries no session, so it
 *   goes to the only session that has requests in flight, or the only session attached; when that is
 *   ambiguous it is NOT broadcast (one session's logs must not reach another): notifications are
 *   dropped and requests refused.
 *
 * Lifecycle: started on first use; a crash answers every in-flight request with GW_ERR_UPSTREAM_CRASHED
 * and the next use starts a new process (re-initialized with the same params, subscriptions renewed)
 * after an exponential backoff; the owner stops it when idle.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/server';
import { rpcError } from '../errors.ts';
import { idKey, isNotification, isRequest, isResponse } from '../jsonrpc.ts';
import { StdioChild } from './child.ts';
import type { SpawnSpec } from './command.ts';
import { STDIO_ERRORS, StdioUpstreamError, type StdioErrorCode } from './errors.ts';

/** First restart delay after a crash; doubled per consecutive crash, capped below. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A process that lived this long before crashing starts the backoff sequence over. */
const BACKOFF_RESET_AFTER_MS = 60_000;
/**
 * Most bytes of requests waiting in the pipe to the process's stdin (it reads slower than clients
 * send). Past it, new requests are refused with GW_ERR_UPSTREAM_BUSY instead of buffered in the gateway;
 * one request of any size is accepted below it, so the bound is this plus one request.
 */
export const MAX_STDIN_BUFFERED_BYTES = 8 * 1024 * 1024;

/** What the process needs from an MCP session of the stdio upstream (virtual-session.ts). */
export interface SessionPort {
  readonly id: string;
  /** Sends a message to this session's client; `relatedRequestId` picks that request's SSE stream. */
  deliver(message: JSONRPCMessage, relatedRequestId?: RequestId): void;
  /** Sends the answer to the client's request `id`, already serialized (see MultiplexedProcess#takeAnswer). */
  deliverAnswer(id: RequestId, json: string): void;
}

/**
 * An answer as the MCP SDK writes it: `{"result":` first, `"id":<n>}` last (`jsonrpc` before it or not),
 * nothing after but whitespace.
 */
const ANSWER_HEAD = '{"result":';
const ANSWER_TAIL = /,"id":(\d{1,15})\}\s*$/;

export interface MultiplexedProcessOptions {
  key: string;
  tenant: string;
  spec: SpawnSpec;
  log: Logger;
  shutdownGraceMs: number;
  /**
   * Bounds spawn plus the process's answer to `initialize` (config `startTimeout`, above 0). Separate
   * from `requestTimeoutMs` because starting (a node process, an `npx` download) routinely takes longer
   * than a tool call should.
   */
  startTimeoutMs: number;
  /** Bounds each request once written to the running process; 0 = no limit. */
  requestTimeoutMs: number;
}

export type ProcessState = 'idle' | 'starting' | 'running' | 'crashed' | 'stopping' | 'stopped';

type Pending =
  | {
      kind: 'client';
      session: SessionPort;
      clientId: RequestId;
      /** The upstream progress token, when the request asked for progress. */
      progressToken?: number;
      timer?: NodeJS.Timeout;
    }
  | { kind: 'internal'; resolve(result: unknown): void; reject(err: Error): void; timer?: NodeJS.Timeout };

/** Per session state inside this process. */
interface SessionRecord {
  /** Client request id (idKey) → upstream id, for cancellations and "has requests in flight". */
  inFlight: Map<string, number>;
  /** Downstream id we gave a server→client request (idKey) → the server's id. */
  serverRequests: Map<string, RequestId>;
  nextDownstreamId: number;
}

export class MultiplexedProcess {
  readonly key: string;
  readonly tenant: string;
  readonly createdAt = Date.now();
  /** Processes started after a crash. */
  restarts = 0;
  #opts: MultiplexedProcessOptions;
  #log: Logger;
  #state: ProcessState = 'idle';
  #child: StdioChild | undefined;
  /** Resolves when the current child is spawned and initialized; undefined when none is. */
  #ready: Promise<void> | undefined;
  #initParams: unknown;
  #initResult: unknown;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  /** Upstream progress token → its owner. */
  #progress = new Map<number, { session: SessionPort; clientToken: string | number; clientId: RequestId }>();
  /** Server's id of a server→client request (idKey) → where it went. */
  #serverRequests = new Map<string, { session: SessionPort; downstreamId: number }>();
  #sessions = new Map<SessionPort, SessionRecord>();
  /** Resource uri → sessions subscribed to it (the process is subscribed while the set is non-empty). */
  #subscriptions = new Map<string, Set<SessionPort>>();
  #consecutiveCrashes = 0;
  #lastCrashAt = 0;
  #startAbort = new AbortController();
  /**
   * Sessions whose client is not reading what the process sends it: while any is, the child's stdout
   * is not read (see StdioChild.pauseOutput). Only this process (this pool key) waits for them.
   */
  #congested = new Set<SessionPort>();
  /** Requests are being refused because stdin is full (so the warning is logged once per episode). */
  #stdinFull = false;
  /** Former children whose process groups are still being ended (a crash, a failed start); stop() waits for them. */
  #retiring = new Set<Promise<void>>();

  constructor(opts: MultiplexedProcessOptions) {
    this.#opts = opts;
    this.key = opts.key;
    this.tenant = opts.tenant;
    this.#log = opts.log;
  }

  get state(): ProcessState {
    return this.#state;
  }
  get pid(): number | undefined {
    return this.#child && !this.#child.exited ? this.#child.pid : undefined;
  }
  get startedAt(): number | undefined {
    return this.#child && !this.#child.exited ? this.#child.startedAt : undefined;
  }
  get sessionCount(): number {
    return this.#sessions.size;
  }
  /** Whether the child's stdout is paused because a session's client is not reading. */
  get outputPaused(): boolean {
    return this.#child?.outputPaused ?? false;
  }
  get stdinBufferedBytes(): number {
    return this.#child?.stdinBufferedBytes ?? 0;
  }
  /** Bytes read from the current child's stdout. */
  get stdoutBytes(): number {
    return this.#child?.stdoutBytes ?? 0;
  }
  get inFlight(): number {
    let n = 0;
    for (const p of this.#pending.values()) if (p.kind === 'client') n++;
    return n;
  }

  attach(session: SessionPort): void {
    this.#sessions.set(session, { inFlight: new Map(), serverRequests: new Map(), nextDownstreamId: 1 });
  }

  /**
   * A session's client stopped (or resumed) reading: what the gateway holds for it is over (or back under) its
   * bound. The process's output is read while no session is congested.
   */
  setCongested(session: SessionPort, congested: boolean): void {
    if (congested && this.#sessions.has(session)) this.#congested.add(session);
    else this.#congested.delete(session);
    this.#applyFlow();
  }

  #applyFlow(): void {
    if (this.#congested.size > 0) this.#child?.pauseOutput();
    else this.#child?.resumeOutput();
  }

  /** The session is gone: cancel what it still has in flight and drop its subscriptions. */
  detach(session: SessionPort): void {
    const rec = this.#sessions.get(session);
    if (!rec) return;
    this.#sessions.delete(session);
    if (this.#congested.delete(session)) this.#applyFlow();
    for (const upstreamId of rec.inFlight.values()) {
      this.#dropPending(upstreamId);
      this.#sendToChild({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: upstreamId, reason: 'session closed' } });
    }
    for (const serverId of rec.serverRequests.values()) {
      this.#serverRequests.delete(idKey(serverId as string | number));
      this.#sendToChild(rpcError(serverId as string | number, -32000, 'the MCP session closed'));
    }
    for (const [uri, set] of this.#subscriptions) {
      if (!set.delete(session) || set.size > 0) continue;
      this.#subscriptions.delete(uri);
      if (this.#state === 'running') this.#internalRequest('resources/unsubscribe', { uri }).catch(() => {});
    }
  }

  /**
   * Answers a session's `initialize`: starts and initializes the process on first use (with these
   * params), then serves every session from the cached result.
   */
  async initialize(params: unknown): Promise<unknown> {
    this.#initParams ??= params;
    await this.#ensureRunning();
    return this.#initResult;
  }

  /** A message from a session's client (anything but `initialize`, which goes to initialize()). */
  handleClientMessage(session: SessionPort, msg: JSONRPCMessage): void {
    const rec = this.#sessions.get(session);
    if (!rec) return;
    if (isRequest(msg)) {
      if (msg.method === 'resources/subscribe' || msg.method === 'resources/unsubscribe') {
        this.#subscription(session, msg as JSONRPCMessage & { id: RequestId; method: string; params?: { uri?: unknown } });
        return;
      }
      this.#forwardRequest(session, rec, msg as JSONRPCMessage & { id: RequestId; method: string; params?: Record<string, unknown> });
      return;
    }
    if (isNotification(msg)) {
      const n = msg as { method: string; params?: Record<string, unknown> };
      // The gateway initialized the process itself; a second `initialized` would confuse it.
      if (n.method === 'notifications/initialized') return;
      if (n.method === 'notifications/cancelled') {
        const requestId = n.params?.requestId;
        if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
        const upstreamId = rec.inFlight.get(idKey(requestId));
        if (upstreamId === undefined) return;
        this.#dropPending(upstreamId);
        this.#sendToChild({ ...n, params: { ...n.params, requestId: upstreamId } });
        return;
      }
      // Other client notifications (roots/list_changed, progress for server requests) pass as they are;
      // a process that is not running has no use for them.
      if (this.#state === 'running') this.#sendToChild(msg);
      return;
    }
    if (isResponse(msg)) {
      const r = msg as { id: RequestId };
      const key = idKey(r.id as string | number);
      const serverId = rec.serverRequests.get(key);
      if (serverId === undefined) return;
      rec.serverRequests.delete(key);
      this.#serverRequests.delete(idKey(serverId as string | number));
      this.#sendToChild({ ...(msg as object), id: serverId });
    }
  }

  /** Stops the process for good: in-flight requests are answered, the child gets SIGTERM then SIGKILL. */
  async stop(reason: StdioErrorCode = 'GW_ERR_SHUTTING_DOWN'): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopping';
    this.#startAbort.abort();
    this.#failPending(reason, 'the upstream process is stopping');
    const child = this.#child;
    this.#ready = undefined;
    if (child) await child.stop(this.#opts.shutdownGraceMs);
    await Promise.all(this.#retiring);
    this.#child = undefined;
    this.#state = 'stopped';
  }

  /** Resident memory of the live child (Linux only; undefined elsewhere or when no child runs). */
  rssBytes(): number | undefined {
    const pid = this.pid;
    if (pid === undefined || process.platform !== 'linux') return undefined;
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
      return m ? Number(m[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }

  // ---- starting ----------------------------------------------------------------------------------

  #ensureRunning(): Promise<void> {
    if (this.#state === 'stopping' || this.#state === 'stopped') {
      return Promise.reject(new StdioUpstreamError('GW_ERR_SHUTTING_DOWN', 'the upstream process is stopping'));
    }
    if (!this.#ready) {
      const ready = this.#start();
      this.#ready = ready;
      // A failed start is forgotten, so the next use tries again (after the backoff).
      ready.catch(() => {
        if (this.#ready === ready) this.#ready = undefined;
      });
    }
    return this.#ready;
  }

  async #start(): Promise<void> {
    this.#state = 'starting';
    const wait = this.#backoffRemaining();
    if (wait > 0) {
      this.#log.info({ waitMs: wait, crashes: this.#consecutiveCrashes }, 'restarting the upstream process after backoff');
      await abortableSleep(wait, this.#startAbort.signal);
    }
    if (this.#startAbort.signal.aborted) throw new StdioUpstreamError('GW_ERR_SHUTTING_DOWN', 'the upstream process is stopping');
    if (this.#lastCrashAt > 0) this.restarts++;

    const child = new StdioChild(this.#opts.spec, this.#log, {
      onMessage: (m) => {
        if (this.#child === child) this.#onChildMessage(m);
      },
      takeLine: (line): boolean => this.#child === child && this.#takeAnswer(line),
      onExit: (info) => this.#onChildExit(child, info),
    }, this.#opts.shutdownGraceMs);
    this.#child = child;
    this.#applyFlow();
    this.#log.info({ pid: child.pid }, 'upstream process started');

    let result: unknown;
    try {
      result = await this.#internalRequest('initialize', this.#initParams, this.#opts.startTimeoutMs, 'startTimeout');
    } catch (err) {
      // A process that cannot initialize is useless: stop it so it does not linger.
      if (this.#child === child) {
        this.#child = undefined;
        this.#state = 'crashed';
        this.#noteCrash(child.startedAt);
        this.#retire(child);
      }
      throw err;
    }
    if (this.#child !== child) throw new StdioUpstreamError('GW_ERR_UPSTREAM_CRASHED', 'the upstream process exited while initializing');
    this.#initResult ??= result;
    this.#sendToChild({ jsonrpc: '2.0', method: 'notifications/initialized' });
    this.#state = 'running';
    for (const uri of this.#subscriptions.keys()) {
      this.#internalRequest('resources/subscribe', { uri }).catch((err) => this.#log.warn({ err, uri }, 'could not renew a subscription'));
    }
  }

  #backoffRemaining(): number {
    if (this.#consecutiveCrashes === 0) return 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.#consecutiveCrashes - 1));
    return Math.max(0, this.#lastCrashAt + delay - Date.now());
  }

  #noteCrash(startedAt: number): void {
    const now = Date.now();
    this.#consecutiveCrashes = now - startedAt >= BACKOFF_RESET_AFTER_MS ? 1 : this.#consecutiveCrashes + 1;
    this.#lastCrashAt = now;
  }

  /** Stops a former child in the background; stop() waits until its whole group is gone. */
  #retire(child: StdioChild): void {
    const done = child.stop(this.#opts.shutdownGraceMs);
    this.#retiring.add(done);
    void done.finally(() => this.#retiring.delete(done));
  }

  #onChildExit(child: StdioChild, info: { code: number | null; signal: NodeJS.Signals | null; error?: Error }): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    // The leader is gone; what it started may still be running (the child ends its group).
    this.#retire(child);
    this.#ready = undefined;
    if (this.#state === 'stopping' || this.#state === 'stopped') return;
    this.#state = 'crashed';
    this.#noteCrash(child.startedAt);
    const spawnFailed = info.error !== undefined && child.pid === undefined;
    this.#log.warn(
      { pid: child.pid, code: info.code, signal: info.signal, err: info.error, inFlight: this.inFlight },
      spawnFailed ? 'upstream process could not be started' : 'upstream process exited unexpectedly',
    );
    this.#failPending(
      spawnFailed ? 'GW_ERR_UPSTREAM_SPAWN_FAILED' : 'GW_ERR_UPSTREAM_CRASHED',
      spawnFailed
        ? `the upstream process could not be started (${info.error?.message})`
        : `the upstream process exited (code ${info.code}, signal ${info.signal}) while this request was in flight; it restarts on next use`,
    );
  }

  /** Answers every pending request with an error and forgets the old process's ids. */
  #failPending(code: StdioErrorCode, message: string): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#progress.clear();
    this.#serverRequests.clear();
    for (const rec of this.#sessions.values()) {
      rec.inFlight.clear();
      rec.serverRequests.clear();
    }
    for (const p of pending) {
      clearTimeout(p.timer);
      if (p.kind === 'internal') p.reject(new StdioUpstreamError(code, message));
      else p.session.deliver(errorFor(p.clientId, code, message), p.clientId);
    }
  }

  // ---- client → process --------------------------------------------------------------------------

  #forwardRequest(
    session: SessionPort,
    rec: SessionRecord,
    msg: JSONRPCMessage & { id: RequestId; method: string; params?: Record<string, unknown> },
  ): void {
    // Fast path, synchronous so a session's messages keep their order.
    if (this.#state === 'running' && this.#child) {
      this.#sendClientRequest(session, rec, msg);
      return;
    }
    this.#ensureRunning().then(
      () => {
        // The session may have closed while the process was starting.
        const current = this.#sessions.get(session);
        if (current) this.#sendClientRequest(session, current, msg);
      },
      (err: unknown) => {
        const e = asStdioError(err);
        session.deliver(errorFor(msg.id, e.code, e.message), msg.id);
      },
    );
  }

  #sendClientRequest(
    session: SessionPort,
    rec: SessionRecord,
    msg: JSONRPCMessage & { id: RequestId; method: string; params?: Record<string, unknown> },
  ): void {
    const buffered = this.#child?.stdinBufferedBytes ?? 0;
    if (buffered > MAX_STDIN_BUFFERED_BYTES) {
      // One warning per episode: refusals come at the clients' request rate.
      if (!this.#stdinFull) this.#log.warn({ buffered, limit: MAX_STDIN_BUFFERED_BYTES }, 'the upstream process is not reading its stdin; refusing requests');
      this.#stdinFull = true;
      session.deliver(
        errorFor(msg.id, 'GW_ERR_UPSTREAM_BUSY', `the upstream process has not read ${buffered} bytes of earlier requests yet; try again later`),
        msg.id,
      );
      return;
    }
    this.#stdinFull = false;
    const upstreamId = this.#nextId++;
    let params = msg.params;
    let progressToken: number | undefined;
    const meta = params?._meta as Record<string, unknown> | undefined;
    const clientToken = meta?.progressToken;
    if (typeof clientToken === 'string' || typeof clientToken === 'number') {
      // Tokens are only unique per client: replace it by the (process-unique) upstream id.
      progressToken = upstreamId;
      params = { ...params, _meta: { ...meta, progressToken } };
      this.#progress.set(progressToken, { session, clientToken, clientId: msg.id });
    }
    const entry: Pending = { kind: 'client', session, clientId: msg.id, progressToken };
    if (this.#opts.requestTimeoutMs > 0) {
      entry.timer = setTimeout(() => {
        if (this.#pending.get(upstreamId) !== entry) return;
        this.#dropPending(upstreamId);
        this.#sendToChild({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: upstreamId, reason: 'timeout' } });
        session.deliver(
          errorFor(msg.id, 'GW_ERR_UPSTREAM_TIMEOUT', `the upstream process did not answer within ${this.#opts.requestTimeoutMs}ms`),
          msg.id,
        );
      }, this.#opts.requestTimeoutMs);
    }
    this.#pending.set(upstreamId, entry);
    rec.inFlight.set(idKey(msg.id as string | number), upstreamId);
    const forwarded = params === undefined ? { ...msg, id: upstreamId } : { ...msg, id: upstreamId, params };
    if (!this.#sendToChild(forwarded)) {
      this.#dropPending(upstreamId);
      session.deliver(errorFor(msg.id, 'GW_ERR_UPSTREAM_CRASHED', 'the upstream process is not running'), msg.id);
    }
  }

  /**
   * Subscriptions are per client in MCP, but the process has one client: it is subscribed to a uri
   * while at least one session is, and the others are answered here.
   */
  #subscription(session: SessionPort, msg: { id: RequestId; method: string; params?: { uri?: unknown } }): void {
    const rec = this.#sessions.get(session)!;
    const uri = msg.params?.uri;
    if (typeof uri !== 'string') {
      this.#forwardRequest(session, rec, msg as JSONRPCMessage & { id: RequestId; method: string });
      return;
    }
    let set = this.#subscriptions.get(uri);
    if (msg.method === 'resources/subscribe') {
      if (set && set.size > 0) {
        set.add(session);
        session.deliver({ jsonrpc: '2.0', id: msg.id, result: {} }, msg.id);
        return;
      }
      if (!set) this.#subscriptions.set(uri, (set = new Set()));
      set.add(session);
    } else {
      set?.delete(session);
      if (set && set.size > 0) {
        session.deliver({ jsonrpc: '2.0', id: msg.id, result: {} }, msg.id);
        return;
      }
      this.#subscriptions.delete(uri);
    }
    this.#forwardRequest(session, rec, msg as JSONRPCMessage & { id: RequestId; method: string });
  }

  /** A request of the gateway's own; `limit` names the config field bounding it (for the error message). */
  #internalRequest(method: string, params: unknown, timeoutMs = this.#opts.requestTimeoutMs, limit = 'requestTimeout'): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const entry: Pending = { kind: 'internal', resolve, reject };
      if (timeoutMs > 0) {
        entry.timer = setTimeout(() => {
          this.#pending.delete(id);
          reject(new StdioUpstreamError('GW_ERR_UPSTREAM_TIMEOUT', `the upstream process did not answer ${method} within ${timeoutMs}ms (${limit})`));
        }, timeoutMs);
      }
      this.#pending.set(id, entry);
      const msg = params === undefined ? { jsonrpc: '2.0', id, method } : { jsonrpc: '2.0', id, method, params };
      if (!this.#sendToChild(msg)) {
        this.#pending.delete(id);
        clearTimeout(entry.timer);
        reject(new StdioUpstreamError('GW_ERR_UPSTREAM_CRASHED', 'the upstream process is not running'));
      }
    });
  }

  #dropPending(upstreamId: number): void {
    const p = this.#pending.get(upstreamId);
    if (!p) return;
    this.#pending.delete(upstreamId);
    clearTimeout(p.timer);
    if (p.kind !== 'client') return;
    if (p.progressToken !== undefined) this.#progress.delete(p.progressToken);
    this.#sessions.get(p.session)?.inFlight.delete(idKey(p.clientId as string | number));
  }

  #sendToChild(msg: unknown): boolean {
    return this.#child?.send(msg) ?? false;
  }

  // ---- process → clients -------------------------------------------------------------------------

  /**
   * A client's answer in the SDK's layout goes to its session as the process wrote it, only the id
   * replaced: not parsed, not serialized again. A 4 KB answer costs two string copies instead of a
   * parse and a stringify, a 20 MB one no longer stalls the event loop for both. The head says it is
   * an answer (`result` is its first member), and since a line holds one JSON text whose last `}`
   * closes it, a `,"id":<n>` right before that is its own top-level id. Its body is not checked: it
   * reaches the client as the process wrote it, as it would without the gateway (a route whose plugins
   * read answers decodes every event anyway). Anything else, or a CR in it (it would end an event
   * stream's line), is parsed and routed by #onChildMessage.
   */
  #takeAnswer(line: string): boolean {
    if (!line.startsWith(ANSWER_HEAD)) return false;
    const tail = ANSWER_TAIL.exec(line.length > 64 ? line.slice(-64) : line);
    if (!tail) return false;
    const upstreamId = Number(tail[1]);
    const p = this.#pending.get(upstreamId);
    if (!p || p.kind !== 'client') return false;
    const head = line.slice(0, line.length - tail[0].length);
    if (head.includes('\r')) return false;
    this.#dropPending(upstreamId);
    p.session.deliverAnswer(p.clientId, `${head},"id":${JSON.stringify(p.clientId)}}`);
    return true;
  }

  #onChildMessage(m: unknown): void {
    if (Array.isArray(m)) {
      for (const item of m) this.#onChildMessage(item);
      return;
    }
    if (isResponse(m)) return this.#onResponse(m as { id: unknown; result?: unknown; error?: { message?: string } });
    if (isRequest(m)) return this.#onServerRequest(m as JSONRPCMessage & { id: RequestId; method: string });
    if (isNotification(m)) return this.#onServerNotification(m as JSONRPCMessage & { method: string; params?: Record<string, unknown> });
    this.#log.debug('child wrote a JSON value that is not JSON-RPC; ignored');
  }

  #onResponse(m: { id: unknown; result?: unknown; error?: { message?: string } }): void {
    const p = typeof m.id === 'number' ? this.#pending.get(m.id) : undefined;
    if (!p) {
      this.#log.debug({ id: m.id }, 'response to an unknown or cancelled request; dropped');
      return;
    }
    this.#dropPending(m.id as number);
    if (p.kind === 'internal') {
      if ('error' in m && m.error) {
        p.reject(new StdioUpstreamError('GW_ERR_UPSTREAM_REFUSED', `the upstream process answered with an error: ${m.error.message ?? 'unknown'}`));
      } else p.resolve(m.result);
      return;
    }
    p.session.deliver({ ...(m as object), id: p.clientId } as JSONRPCMessage, p.clientId);
  }

  #onServerRequest(m: JSONRPCMessage & { id: RequestId; method: string }): void {
    if (m.method === 'ping') {
      this.#sendToChild({ jsonrpc: '2.0', id: m.id, result: {} });
      return;
    }
    const target = this.#soleSession();
    if (!target) {
      this.#log.warn({ method: m.method }, 'server request with no unambiguous session; refused');
      this.#sendToChild(rpcError(m.id as string | number, -32603, 'the gateway cannot tell which MCP session this request is for', { code: 'GW_ERR_AMBIGUOUS_SESSION' }));
      return;
    }
    const rec = this.#sessions.get(target.session)!;
    const downstreamId = rec.nextDownstreamId++;
    rec.serverRequests.set(idKey(downstreamId), m.id);
    this.#serverRequests.set(idKey(m.id as string | number), { session: target.session, downstreamId });
    target.session.deliver({ ...m, id: downstreamId }, target.related);
  }

  #onServerNotification(m: JSONRPCMessage & { method: string; params?: Record<string, unknown> }): void {
    const params = m.params ?? {};
    if (m.method === 'notifications/progress') {
      const token = params.progressToken;
      const owner = typeof token === 'number' ? this.#progress.get(token) : undefined;
      if (owner) owner.session.deliver({ ...m, params: { ...params, progressToken: owner.clientToken } }, owner.clientId);
      return;
    }
    if (m.method === 'notifications/cancelled') {
      const requestId = params.requestId;
      if (typeof requestId !== 'string' && typeof requestId !== 'number') return;
      const target = this.#serverRequests.get(idKey(requestId));
      if (!target) return;
      this.#serverRequests.delete(idKey(requestId));
      this.#sessions.get(target.session)?.serverRequests.delete(idKey(target.downstreamId));
      target.session.deliver({ ...m, params: { ...params, requestId: target.downstreamId } });
      return;
    }
    if (m.method.endsWith('/list_changed')) {
      for (const session of this.#sessions.keys()) session.deliver(m);
      return;
    }
    if (m.method === 'notifications/resources/updated') {
      const uri = params.uri;
      for (const session of (typeof uri === 'string' && this.#subscriptions.get(uri)) || []) session.deliver(m);
      return;
    }
    const target = this.#soleSession();
    if (target) target.session.deliver(m, target.related);
    else this.#log.debug({ method: m.method }, 'server notification with no unambiguous session; dropped');
  }

  /**
   * The session an unattributed server message belongs to: the only one with requests in flight (on
   * the stream of its oldest one), else the only one attached.
   */
  #soleSession(): { session: SessionPort; related?: RequestId } | undefined {
    let busy: SessionPort | undefined;
    for (const [session, rec] of this.#sessions) {
      if (rec.inFlight.size === 0) continue;
      if (busy) return undefined;
      busy = session;
    }
    if (busy) {
      const firstUpstreamId = this.#sessions.get(busy)!.inFlight.values().next().value!;
      const p = this.#pending.get(firstUpstreamId);
      return { session: busy, related: p?.kind === 'client' ? p.clientId : undefined };
    }
    if (this.#sessions.size === 1) return { session: this.#sessions.keys().next().value! };
    return undefined;
  }
}

function errorFor(id: RequestId, code: StdioErrorCode, message: string): JSONRPCMessage {
  return rpcError(id as string | number, STDIO_ERRORS[code].rpc, message, { code });
}

function asStdioError(err: unknown): StdioUpstreamError {
  if (err instanceof StdioUpstreamError) return err;
  return new StdioUpstreamError('GW_ERR_UPSTREAM_SPAWN_FAILED', (err as Error)?.message ?? String(err));
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new StdioUpstreamError('GW_ERR_SHUTTING_DOWN', 'the upstream process is stopping'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new StdioUpstreamError('GW_ERR_SHUTTING_DOWN', 'the upstream process is stopping'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

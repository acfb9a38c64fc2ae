/**
 * One MCP session of the bridge: an SDK server transport for the client side, bound to the principal
 * that opened it and to the process that serves it. Streamable HTTP sessions use
 * `StreamableHTTPServerTransport`; legacy HTTP+SSE sessions (clients that open `GET` + `event: endpoint`)
 * use `SSEServerTransport`, whose GET stream is the session: when it closes, the session ends.
 *
 * A session ends on DELETE, when the bridge closes, or after `idleTimeout` with no HTTP request in
 * progress (no open GET stream, no pending POST): a client that vanished without DELETE must not keep
 * its process alive forever.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import { isRequest } from '../jsonrpc.ts';
import { STDIO_ERRORS, StdioUpstreamError } from './errors.ts';
import type { MultiplexedProcess, SessionPort } from './multiplexed-process.ts';
import { rpcError } from '../errors.ts';

export interface BridgeSessionOptions {
  id: string;
  tenant: string;
  sub: string;
  process: MultiplexedProcess;
  log: Logger;
  /** Close the session after this long without HTTP activity; 0 = never. */
  idleTimeoutMs: number;
  /** Largest POST body the session's transport reads. */
  maxBodyBytes: number;
  /** Called once when the session has ended, whatever the reason. */
  onClosed(session: BridgeSession): void;
  /** A started legacy transport (its `sessionId` must be `id`); absent for Streamable HTTP. */
  legacy?: SSEServerTransport;
}

export class BridgeSession implements SessionPort {
  readonly id: string;
  readonly tenant: string;
  readonly sub: string;
  readonly process: MultiplexedProcess;
  readonly openedAt = Date.now();
  lastActivity = Date.now();
  readonly transport: StreamableHTTPServerTransport | SSEServerTransport;
  readonly legacy: boolean;
  #log: Logger;
  #activeHttp = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleTimeoutMs: number;
  #closed = false;
  #closeReason: string | undefined;
  #onClosed: (session: BridgeSession) => void;

  constructor(opts: BridgeSessionOptions) {
    this.id = opts.id;
    this.tenant = opts.tenant;
    this.sub = opts.sub;
    this.process = opts.process;
    this.#log = opts.log;
    this.#idleTimeoutMs = opts.idleTimeoutMs;
    this.#onClosed = opts.onClosed;
    this.legacy = opts.legacy !== undefined;
    this.transport = opts.legacy ?? new StreamableHTTPServerTransport({ sessionIdGenerator: () => opts.id, maxRequestBodySize: opts.maxBodyBytes });
    this.transport.onmessage = (msg) => this.#onClientMessage(msg);
    this.transport.onerror = (err) => this.#log.debug({ err }, 'session transport error');
    this.transport.onclose = () => this.#release();
    this.process.attach(this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Serves one HTTP request of this session; `parsedBody` when the bridge already read the body. */
  async handle(req: IncomingMessage, res: ServerResponse, parsedBody?: unknown): Promise<void> {
    this.#activeHttp++;
    this.lastActivity = Date.now();
    clearTimeout(this.#idleTimer);
    res.once('close', () => {
      this.#activeHttp--;
      this.lastActivity = Date.now();
      this.#armIdleTimer();
    });
    if (this.transport instanceof StreamableHTTPServerTransport) await this.transport.handleRequest(req, res, parsedBody);
    else await this.transport.handlePostMessage(req, res, parsedBody);
  }

  /**
   * Starts a legacy session's GET stream (writes the `endpoint` event). The stream is the session: it
   * counts as HTTP activity while open, and the transport's close (stream gone) ends the session.
   */
  async openLegacyStream(res: ServerResponse): Promise<void> {
    this.#activeHttp++;
    clearTimeout(this.#idleTimer);
    res.once('close', () => {
      this.#activeHttp--;
      this.lastActivity = Date.now();
    });
    await this.transport.start();
  }

  /** Whether the transport accepted the session (a Streamable initialize can be refused: 406, 415 …). */
  get established(): boolean {
    return this.legacy || this.transport.sessionId !== undefined;
  }

  deliver(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    if (this.#closed) return;
    // The client's stream may be gone (it disconnected mid-request): the SDK then throws; the message
    // has nowhere to go, which is what disconnecting means.
    const sent = this.transport instanceof StreamableHTTPServerTransport
      ? this.transport.send(message, relatedRequestId === undefined ? undefined : { relatedRequestId })
      : this.transport.send(message);
    sent.catch((err: unknown) => {
      this.#log.debug({ err, session: this.id }, 'message for a closed client stream dropped');
    });
  }

  /** Ends the session; `reason` is logged (bridge shutdown, idle, failed initialize …). */
  async close(reason = 'closed by the bridge'): Promise<void> {
    this.#closeReason ??= reason;
    await this.transport.close();
  }

  #onClientMessage(msg: JSONRPCMessage): void {
    if (isRequest(msg) && msg.method === 'initialize') {
      this.process.initialize(msg.params).then(
        (result) => this.deliver({ jsonrpc: '2.0', id: msg.id, result } as JSONRPCMessage, msg.id),
        (err: unknown) => {
          const e = err instanceof StdioUpstreamError ? err : new StdioUpstreamError('GW_ERR_UPSTREAM_SPAWN_FAILED', String(err));
          this.deliver(rpcError(msg.id, STDIO_ERRORS[e.code].rpc, e.message, { code: e.code }), msg.id);
          // A session whose initialize failed is of no use; the client must start over.
          setImmediate(() => void this.close('initialize failed'));
        },
      );
      return;
    }
    this.process.handleClientMessage(this, msg);
  }

  #armIdleTimer(): void {
    if (this.#closed || this.#activeHttp > 0 || this.#idleTimeoutMs <= 0) return;
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      void this.close('idle');
    }, this.#idleTimeoutMs);
  }

  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    // No reason set: the transport closed itself, i.e. the client sent DELETE.
    this.#log.debug({ session: this.id, reason: this.#closeReason ?? 'DELETE by the client' }, 'session closed');
    this.process.detach(this);
    this.#onClosed(this);
  }
}

/**
 * One MCP session of the bridge: an SDK server transport for the client side, bound to the principal
 * that opened it and to the process that serves it. Streamable HTTP sessions use
 * `StreamableHTTPServerTransport`; legacy HTTP+SSE sessions (clients that open `GET` + `event: endpoint`)
 * use `SSEServerTransport`, whose GET stream is the session: when it closes, the session ends.
 *
 * A session ends on DELETE, when the bridge closes, or after `idleTimeout` with no HTTP request in
 * progress (no open GET stream, no pending POST): a client that vanished without DELETE must not keep
 * its process alive forever.
 *
 * Flow control towards the client: the SDK transports take every message they are given (the Streamable
 * one queues it in a web stream without bound), so a client that reads nothing would make the gateway
 * hold the process's whole output. A message therefore goes to the transport only while none of this
 * session's HTTP responses waits for 'drain'; otherwise it waits in this session's queue, and above
 * QUEUE_HIGH_BYTES the process stops reading the child's stdout until the queue is back under
 * QUEUE_LOW_BYTES. The child then blocks on its own writes: a slow client slows its process (its pool
 * key, one tenant by default), and the gateway's memory stays bounded.
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

/** Queue size (bytes of JSON) above which the process stops reading its child's output. */
export const QUEUE_HIGH_BYTES = 1024 * 1024;
/** Queue size at which it reads again. */
const QUEUE_LOW_BYTES = 256 * 1024;
/**
 * Most bytes handed to the transport per turn of the event loop while the client reads: the transport
 * writes asynchronously, so 'drain' pressure only shows once what was handed over has been written.
 */
const FLUSH_BUDGET_BYTES = 64 * 1024;

interface Queued {
  message: JSONRPCMessage;
  relatedRequestId: RequestId | undefined;
  bytes: number;
}

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
  /** This session's open HTTP responses (POST streams, GET stream, legacy stream). */
  #responses = new Set<ServerResponse>();
  /** Messages waiting for the client to read; `#queueHead` is the next one (no O(n) shift per message). */
  #queue: Array<Queued | undefined> = [];
  #queueHead = 0;
  #queuedBytes = 0;
  #congested = false;
  #flushScheduled = false;
  #drainArmed = new WeakSet<ServerResponse>();

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
    this.#track(res);
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
    this.#track(res);
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

  /** Bytes of messages waiting in this session's queue (not yet handed to the transport). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Whether this session's slow client holds up its process's output. */
  get congested(): boolean {
    return this.#congested;
  }

  deliver(message: JSONRPCMessage, relatedRequestId?: RequestId): void {
    if (this.#closed) return;
    if (this.#queue.length === this.#queueHead && !this.#blocked()) {
      this.#send(message, relatedRequestId);
      return;
    }
    // Only a slow client's messages are measured (a second stringify, off the fast path).
    const bytes = Buffer.byteLength(JSON.stringify(message));
    this.#queue.push({ message, relatedRequestId, bytes });
    this.#queuedBytes += bytes;
    if (!this.#congested && this.#queuedBytes > QUEUE_HIGH_BYTES) {
      this.#congested = true;
      this.#log.debug({ session: this.id, queuedBytes: this.#queuedBytes }, 'client is not reading; pausing its process\'s output');
      this.process.setCongested(this, true);
    }
    this.#scheduleFlush();
  }

  #send(message: JSONRPCMessage, relatedRequestId: RequestId | undefined): void {
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

  #track(res: ServerResponse): void {
    this.#responses.add(res);
    res.once('close', () => {
      this.#responses.delete(res);
      // A closed stream no longer holds the others back (its messages are dropped by the transport).
      if (this.#queue.length > this.#queueHead) this.#scheduleFlush();
    });
  }

  /** Whether a response of this session has more buffered than its socket takes (the client is slow). */
  #blocked(): boolean {
    for (const res of this.#responses) if (res.writableNeedDrain) return true;
    return false;
  }

  #scheduleFlush(): void {
    if (this.#closed) return;
    if (this.#blocked()) {
      for (const res of this.#responses) {
        if (!res.writableNeedDrain || this.#drainArmed.has(res)) continue;
        this.#drainArmed.add(res);
        res.once('drain', () => {
          this.#drainArmed.delete(res);
          this.#flush();
        });
      }
      return;
    }
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed) return;
    let budget = FLUSH_BUDGET_BYTES;
    while (this.#queue.length > this.#queueHead && budget > 0 && !this.#blocked()) {
      const item = this.#queue[this.#queueHead]!;
      this.#queue[this.#queueHead++] = undefined;
      this.#queuedBytes -= item.bytes;
      budget -= item.bytes;
      this.#send(item.message, item.relatedRequestId);
    }
    if (this.#queueHead === this.#queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else {
      if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#queueHead);
        this.#queueHead = 0;
      }
      this.#scheduleFlush();
    }
    if (this.#congested && this.#queuedBytes <= QUEUE_LOW_BYTES) {
      this.#congested = false;
      this.process.setCongested(this, false);
    }
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
    this.#queue = [];
    this.#queueHead = 0;
    this.#queuedBytes = 0;
    this.#congested = false; // detach() below releases the process's output
    // No reason set: the transport closed itself, i.e. the client sent DELETE.
    this.#log.debug({ session: this.id, reason: this.#closeReason ?? 'DELETE by the client' }, 'session closed');
    this.process.detach(this);
    this.#onClosed(this);
  }
}

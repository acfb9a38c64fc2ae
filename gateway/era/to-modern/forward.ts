/**
 * One 2025 request carried to the 2026 upstream and its answer carried back.
 *
 * The request goes up enveloped, with its mirror headers; the answer comes back in the 2025 shape
 * under the client's id, as JSON or as an event stream, whichever the upstream chose. Progress and
 * log messages on the upstream's stream are relayed as they come.
 *
 * Two answers are not final:
 * - `input_required` (tools/call, prompts/get, resources/read): the client is asked for the input with
 *   real server-to-client requests on an event stream (see input.ts), then the request is retried
 *   upstream with a new id, the same params plus `inputResponses`, and the `requestState` exactly as
 *   received, as often as the upstream asks (bounded). The client sees one request and one result.
 * - a header mismatch (-32020) on `tools/call`: the tool's schema changed since it was learned; the
 *   tools are listed again and the call is sent once more. The upstream refused it before running it,
 *   so sending it again cannot run it twice.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { UpstreamCall, UpstreamResponse } from '../../runtime.ts';
import { idKey } from '../../jsonrpc.ts';
import { MRTR_METHODS } from '../versions.ts';
import { EventAnswer, jsonAnswer, rawAnswer, rpcFailure, type Answer } from './answer.ts';
import { InputFailure, type InputBridge } from './input.ts';
import { isEventStream, UpstreamTooLargeError } from '../upstream-read.ts';
import { eventMessages, parseMessage, readText, responseId } from './read.ts';
import { isObject, type Session, type SessionMemory } from './session.ts';
import type { ModernUpstream } from './upstream.ts';
import { legacyNotification, legacyResult, withEnvelope } from './wire.ts';

export interface ForwardContext {
  upstream: ModernUpstream;
  memory: SessionMemory;
  inputs: InputBridge;
  inFlight: InFlight;
  log: Logger;
  /** Fires when the translator closes. */
  closing: AbortSignal;
  maxMessageBytes: number;
  /** Most `input_required` answers to one request before the translator gives up. */
  maxInputRounds: number;
}

export interface ClientRequest {
  id: string | number;
  method: string;
  params: unknown;
}

/** -32020: the mirror headers do not match the body. */
const HEADER_MISMATCH = -32020;

/** A 2025 client's requests in progress on this replica, so `notifications/cancelled` can stop them. */
export class InFlight {
  readonly #runs = new Map<string, AbortController>();

  /** Undefined when the id is already in flight for the session (the first one stays cancellable). */
  start(nonce: string, id: string | number): { signal: AbortSignal; end(): void } | undefined {
    const key = `${nonce}\0${idKey(id)}`;
    if (this.#runs.has(key)) return undefined;
    const ac = new AbortController();
    this.#runs.set(key, ac);
    return { signal: ac.signal, end: () => this.#runs.get(key) === ac && this.#runs.delete(key) };
  }

  cancel(nonce: string, id: string | number): void {
    this.#runs.get(`${nonce}\0${idKey(id)}`)?.abort(new Error('cancelled by the client'));
  }
}

type Outcome =
  | { kind: 'final'; status: number; message: Record<string, unknown> }
  /** Not a JSON-RPC answer: passed to the client as it came. */
  | { kind: 'raw'; res: UpstreamResponse; body: string }
  /** The upstream's stream ended without the answer. */
  | { kind: 'none' };

export function forward(ctx: ForwardContext, call: UpstreamCall, session: Session, request: ClientRequest): Promise<UpstreamResponse> {
  return new Run(ctx, call, session, request).start();
}

class Run {
  readonly #ctx: ForwardContext;
  readonly #call: UpstreamCall;
  readonly #session: Session;
  readonly #req: ClientRequest;
  #stream: EventAnswer | undefined;
  #resolve!: (a: UpstreamResponse) => void;
  #reject!: (e: unknown) => void;
  #answered = false;

  constructor(ctx: ForwardContext, call: UpstreamCall, session: Session, request: ClientRequest) {
    this.#ctx = ctx;
    this.#call = call;
    this.#session = session;
    this.#req = request;
  }

  start(): Promise<UpstreamResponse> {
    const answer = new Promise<UpstreamResponse>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    const own = this.#ctx.inFlight.start(this.#session.nonce, this.#req.id);
    const signals = [this.#call.signal, this.#ctx.closing, ...(own ? [own.signal] : [])];
    const signal = AbortSignal.any(signals);
    this.#go(signal).then(
      () => this.#settleUnanswered(),
      (err: unknown) => this.#fail(err, signal),
    ).finally(() => own?.end());
    return answer;
  }

  async #go(signal: AbortSignal): Promise<void> {
    const { upstream, memory } = this.#ctx;
    const { method } = this.#req;
    const level = memory.level(this.#session.nonce);
    const envelope = withEnvelope(this.#req.params, this.#session, level);
    const caller = this.#call;
    if (method === 'tools/call' && typeof envelope.name === 'string') {
      await upstream.ensureTool(caller, this.#session, level, envelope.name, signal);
    }
    let params = envelope;
    let upstreamId: string | number = this.#req.id;
    let relearned = false;
    for (let round = 0; ; ) {
      const res = await upstream.send(caller, { id: upstreamId, method, params }, signal);
      const outcome = await this.#read(res, upstreamId, signal);
      if (outcome.kind === 'raw') return this.#answerRaw(outcome.res, outcome.body);
      if (outcome.kind === 'none') {
        return this.#answer(502, rpcFailure(this.#req.id, -32000, 'the upstream ended its stream without answering'));
      }
      const { status, message } = outcome;
      const error = isObject(message.error) ? message.error : undefined;
      if (error?.code === HEADER_MISMATCH && method === 'tools/call' && !relearned) {
        relearned = true;
        await upstream.relearn(caller, this.#session, level, signal);
        continue;
      }
      const result = message.result;
      if (isObject(result) && result.resultType === 'input_required' && MRTR_METHODS.has(method)) {
        if (++round > this.#ctx.maxInputRounds) {
          return this.#answer(200, rpcFailure(this.#req.id, -32603, `the upstream asked for input more than ${this.#ctx.maxInputRounds} times`));
        }
        const responses = await this.#ctx.inputs.gather(this.#session, result.inputRequests, this.#openStream(), signal);
        params = { ...envelope };
        delete params.inputResponses;
        delete params.requestState;
        if (responses !== undefined) params.inputResponses = responses;
        if (typeof result.requestState === 'string') params.requestState = result.requestState;
        upstreamId = `gw-retry-${randomUUID()}`;
        continue;
      }
      return this.#answerFinal(status, message);
    }
  }

  /** Reads one upstream answer: relays what comes before the response, returns the response. */
  async #read(res: UpstreamResponse, upstreamId: string | number, signal: AbortSignal): Promise<Outcome> {
    const max = this.#ctx.maxMessageBytes;
    if (isEventStream(res) && res.statusCode < 300) {
      const stream = this.#openStream();
      for await (const m of eventMessages(res, max)) {
        if (responseId(m) === upstreamId) {
          res.destroy();
          return { kind: 'final', status: res.statusCode, message: m };
        }
        if (typeof m.method === 'string' && m.id === undefined) {
          if (!stream.send(legacyNotification(m))) await stream.drained();
        } else {
          // 2026 servers send no requests on a response stream; nothing else belongs to this request.
          this.#ctx.log.debug({ method: m.method }, 'to-modern: unexpected message on an upstream stream; dropped');
        }
        if (signal.aborted || stream.gone) break;
      }
      signal.throwIfAborted();
      return { kind: 'none' };
    }
    const body = await readText(res, max);
    const m = parseMessage(body);
    if (m && responseId(m) !== undefined) return { kind: 'final', status: res.statusCode, message: m };
    return { kind: 'raw', res, body };
  }

  #answerFinal(status: number, message: Record<string, unknown>): void {
    const out: Record<string, unknown> = { jsonrpc: '2.0', id: this.#req.id };
    if ('error' in message) out.error = message.error;
    else out.result = this.#legacy(message.result);
    this.#answer(legacyStatus(status), out);
  }

  /** The result as a 2025 client expects it; a tools/list also teaches the tools' header declarations. */
  #legacy(result: unknown): unknown {
    const out = legacyResult(result);
    if (this.#req.method !== 'tools/list' || !isObject(out) || !Array.isArray(out.tools)) return out;
    const tools = this.#ctx.upstream.tools;
    tools.learn(out);
    // A tool whose x-mcp-header annotations break the spec's rules cannot be called with the right
    // headers: the spec has clients leave it out of the list.
    const valid = out.tools.filter((t) => !isObject(t) || typeof t.name !== 'string' || tools.of(t.name) !== null);
    if (valid.length !== out.tools.length) this.#ctx.log.warn({ dropped: out.tools.length - valid.length }, 'to-modern: tools with invalid x-mcp-header annotations left out of tools/list');
    return { ...out, tools: valid };
  }

  #openStream(): EventAnswer {
    if (!this.#stream) {
      this.#stream = new EventAnswer();
      this.#answered = true;
      this.#resolve(this.#stream);
    }
    return this.#stream;
  }

  #answer(status: number, message: Record<string, unknown>): void {
    if (this.#stream) {
      this.#stream.send(message);
      this.#stream.finish();
      return;
    }
    this.#settle(jsonAnswer(status, message));
  }

  #answerRaw(res: UpstreamResponse, body: string): void {
    if (this.#stream) {
      this.#ctx.log.warn({ status: res.statusCode }, 'to-modern: upstream retry answered without JSON-RPC');
      return this.#answer(502, rpcFailure(this.#req.id, -32000, `the upstream answered HTTP ${res.statusCode} without a JSON-RPC message`));
    }
    this.#settle(rawAnswer(res.statusCode, res.headers, body));
  }

  #settle(a: Answer): void {
    if (this.#answered) return;
    this.#answered = true;
    this.#resolve(a);
  }

  /**
   * The run ended without an answer: cancelled by the client, or the client left. A 2025 receiver
   * sends no answer to a cancelled request, but the POST must end: with an event stream that carries
   * nothing, which a client reads as "no answer here" (a JSON body would have to be one).
   */
  #settleUnanswered(): void {
    if (this.#stream) return this.#stream.finish();
    const empty = new EventAnswer();
    empty.finish();
    this.#settle(empty);
  }

  #fail(err: unknown, signal: AbortSignal): void {
    if (signal.aborted) return this.#settleUnanswered();
    if (err instanceof InputFailure) return this.#answer(200, rpcFailure(this.#req.id, err.code, err.message, err.data));
    if (err instanceof UpstreamTooLargeError) return this.#answer(502, rpcFailure(this.#req.id, -32000, err.message));
    if (!this.#answered) {
      // Nothing sent yet: the core answers 502, as for an HTTP upstream it cannot reach.
      this.#answered = true;
      return this.#reject(err);
    }
    this.#ctx.log.warn({ err: { message: (err as Error)?.message } }, 'to-modern: upstream failed mid-answer');
    this.#answer(502, rpcFailure(this.#req.id, -32000, `the upstream failed: ${(err as Error)?.message ?? String(err)}`));
  }
}

/**
 * A 2026 server refuses a bad request with a 4xx and a JSON-RPC error (404 for an unknown method, 400
 * for invalid params or an unsupported version); a 2025 server answers those with 200 and the error
 * in the body, and 2025 clients only read the body of a 200. Statuses that mean something to the
 * client's HTTP stack (auth, rate limits, server failures) are kept.
 */
function legacyStatus(status: number): number {
  if (status >= 500 || status === 401 || status === 403 || status === 429) return status;
  return 200;
}

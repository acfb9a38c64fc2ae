/**
 * The one inspect loop. Every JSON-RPC message the gateway reads (a request body, a JSON answer, an
 * SSE event, each element of a batch, in either direction) goes through `inspect`: correlate it, run
 * the route's message hooks, and collect what to send on. The codecs (json-codec.ts, sse-codec.ts)
 * decode before and encode after; nothing else parses, correlates or re-serializes messages.
 *
 * Fail closed: in the request direction anything that is not a JSON-RPC message, or that reuses a
 * pending id, is answered with an error and never forwarded; in the response direction a value that is
 * not a JSON-RPC message is dropped, since no plugin could have vetted it.
 */
import type { Exchange, JSONRPCMessage, JSONRPCRequest, MessageContext } from '../contract.ts';
import { coreRefusal, refusalMessage, type Refusal } from '../errors.ts';
import { idKey, idOf, isMessage, isRequest, isResponse } from '../jsonrpc.ts';
import type { Pipeline } from '../pipeline.ts';
import type { Reservation } from './correlation.ts';
import type { MessageRules } from '../era/message-rules.ts';
import { EXCHANGE_TRACE } from '../tracing/spans.ts';

/** Where requests are remembered for the answers to find (an exchange's table or a legacy session's). */
export interface Correlator {
  has(key: string): boolean;
  add(key: string, req: JSONRPCRequest): Reservation;
  take(key: string): JSONRPCRequest | undefined;
}

/** What the loop needs from the exchange it serves. */
export interface InspectScope {
  readonly pipeline: Pipeline;
  readonly x: Exchange;
  /** Undefined when nothing needs requests remembered (no plugin reads answers). */
  readonly correlator: Correlator | undefined;
  /** Whether message hooks run in this direction; when false the loop only correlates. */
  readonly hooks: boolean;
  /** What the core does to messages before the hooks (era/message-rules.ts); absent when it does nothing. */
  readonly rules?: MessageRules;
  /** Metrics: one call per message. */
  observe?(direction: 'request' | 'response', m: JSONRPCMessage, request?: JSONRPCRequest): void;
  /** A message refused one by one (outcome, metrics). */
  noteRefusal(m: unknown, r: Refusal): void;
}

export interface Inspected {
  /** Messages to send on, in order. */
  out: JSONRPCMessage[];
  /** Request direction: the gateway's own answers to requests it refused (errors with their ids). */
  answers: JSONRPCMessage[];
  /** Whether `out` differs from the input, so the upstream's bytes cannot be sent as they are. */
  changed: boolean;
  /** The refusal of a request that was alone in a JSON body: its status becomes the HTTP status. */
  loneRefusal?: Refusal;
}

export async function inspect(
  values: readonly unknown[], direction: MessageContext['direction'], framing: MessageContext['framing'], scope: InspectScope,
): Promise<Inspected> {
  const result: Inspected = { out: [], answers: [], changed: false };
  const lone = framing === 'json' && values.length === 1;
  // One span per JSON body when traced; none per SSE event (a stream may carry thousands).
  const trace = scope.hooks && framing !== 'sse' ? scope.x.get(EXCHANGE_TRACE) : undefined;
  const start = trace ? performance.now() : 0;
  for (const value of values) {
    if (direction === 'request') await inspectRequest(value, framing, lone, scope, result);
    else await inspectResponse(value, framing, scope, result);
  }
  trace?.stage(`${direction} messages`, start, result.loneRefusal);
  return result;
}

async function inspectRequest(value: unknown, framing: MessageContext['framing'], lone: boolean, scope: InspectScope, result: Inspected): Promise<void> {
  if (!isMessage(value)) {
    // A batch must not smuggle what plugins cannot read.
    refuse(value, coreRefusal('GW_ERR_INVALID_REQUEST', 'Invalid Request: not a JSON-RPC 2.0 message'), lone, scope, result);
    return;
  }
  const id = isRequest(value) ? value.id : undefined;
  if (id !== undefined && scope.correlator?.has(idKey(id))) {
    refuse(value, duplicateId(id), lone, scope, result);
    return;
  }
  let message: JSONRPCMessage = value;
  if (scope.rules) {
    const ruled = scope.rules.request(value);
    if ('status' in ruled) {
      refuse(value, ruled, lone, scope, result);
      return;
    }
    if (ruled !== value) result.changed = true;
    message = ruled;
  }
  scope.observe?.('request', value);
  if (scope.hooks) {
    const outcome = await scope.pipeline.message(message, scope.x, { direction: 'request', framing });
    if (outcome.kind === 'drop') {
      result.changed = true;
      return;
    }
    if (outcome.kind === 'reject') {
      scope.noteRefusal(value, outcome.refusal);
      refuse(value, outcome.refusal, lone, scope, result, true);
      return;
    }
    if (outcome.message !== message) result.changed = true;
    message = outcome.message;
  }
  if (isRequest(message) && scope.correlator) {
    const reserved = scope.correlator.add(idKey(message.id), message);
    if (reserved !== 'ok') {
      refuse(value, reserved === 'duplicate' ? duplicateId(message.id) : tooManyPending(), lone, scope, result);
      return;
    }
  }
  result.out.push(message);
}

async function inspectResponse(raw: unknown, framing: MessageContext['framing'], scope: InspectScope, result: Inspected): Promise<void> {
  if (!isMessage(raw)) {
    result.changed = true;
    scope.x.log.warn({ framing }, 'dropped an upstream value that is not a JSON-RPC message');
    return;
  }
  let request: JSONRPCRequest | undefined;
  if (isResponse(raw)) {
    const id = idOf(raw);
    if (id === null) {
      // An error the upstream could not attribute (a parse error, say): it answers nothing the client
      // is waiting for under an id, carries no result, and passes as it is.
      if ('error' in raw) {
        result.out.push(raw);
        return;
      }
      result.changed = true;
      return;
    }
    request = scope.correlator?.take(idKey(id));
  }
  let value = raw;
  if (scope.rules) {
    value = scope.rules.response(raw, request);
    if (value !== raw) result.changed = true;
  }
  scope.observe?.('response', value, request);
  if (!scope.hooks) {
    result.out.push(value);
    return;
  }
  const outcome = await scope.pipeline.message(value, scope.x, { direction: 'response', framing, request });
  if (outcome.kind === 'forward') {
    if (outcome.message !== value) result.changed = true;
    result.out.push(outcome.message);
    return;
  }
  result.changed = true;
  if (outcome.kind === 'reject') {
    scope.noteRefusal(value, outcome.refusal);
    // The client waits for this id: it gets the error instead. A refused notification or server request
    // is simply not delivered.
    if (isResponse(value)) result.out.push(refusalMessage(outcome.refusal, idOf(value)));
  }
}

/** A request the gateway answers itself; `noted` when the refusal was already counted. */
function refuse(value: unknown, r: Refusal, lone: boolean, scope: InspectScope, result: Inspected, noted = false): void {
  result.changed = true;
  if (!noted) scope.noteRefusal(value, r);
  if (lone) result.loneRefusal = r;
  // Only requests get answers: a refused notification or client response has nobody waiting for it.
  if (isMessage(value) && !isRequest(value)) return;
  result.answers.push(refusalMessage(r, idOf(value)));
}

function duplicateId(id: string | number): Refusal {
  return coreRefusal('GW_ERR_DUPLICATE_ID',
    `Invalid Request: id ${JSON.stringify(id)} is already in use by a request that has not been answered yet; JSON-RPC ids must be unique while pending`);
}

function tooManyPending(): Refusal {
  return coreRefusal('GW_ERR_TOO_MANY_PENDING', 'Too many requests of this session are awaiting answers; wait for some to finish');
}

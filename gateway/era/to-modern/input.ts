/**
 * Multi round-trip requests, bridged for a 2025 client: the `inputRequests` of an `input_required`
 * answer become real server-to-client requests on the client's event stream, and the client's
 * answers (each in a POST of its own, with the same session) are gathered into `inputResponses`.
 *
 * The ids the client sees are minted here, never the upstream's keys, and a response is matched by
 * session and id: one session cannot answer another's question. Answers must come to the replica
 * that holds the stream (as with any 2025 server that sends requests); the wait is bounded and ends
 * when the client goes away.
 */
import { randomUUID } from 'node:crypto';
import { LEGACY_VERSION } from '../versions.ts';
import type { EventAnswer } from './answer.ts';
import { isObject, type Session } from './session.ts';

/** Why input could not be gathered; the client's original request is answered with this error. */
export class InputFailure extends Error {
  readonly code: number;
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.code = code;
    this.data = data;
  }
}

/** The 2025 SDKs' code for a request that was not answered in time. */
const REQUEST_TIMEOUT = -32001;
const INTERNAL_ERROR = -32603;

export interface InputBridgeOptions {
  /** How long the client has to answer every input request of one round. */
  timeoutMs: number;
  /** Most input requests awaiting an answer at once, over every session. */
  maxPending: number;
}

type Waiter = (response: Record<string, unknown>) => void;

export class InputBridge {
  readonly #waiting = new Map<string, Waiter>();
  readonly #opts: InputBridgeOptions;

  constructor(opts: InputBridgeOptions) {
    this.#opts = opts;
  }

  /**
   * Asks the client for every input request and resolves with the `inputResponses` for the retry;
   * undefined when the upstream asked for nothing (a `requestState`-only answer: retry right away).
   * Throws InputFailure when the client cannot or did not answer; rejects with the signal's reason
   * when the exchange ends first.
   */
  async gather(session: Session, inputRequests: unknown, stream: EventAnswer, signal: AbortSignal): Promise<Record<string, unknown> | undefined> {
    if (inputRequests === undefined) return undefined;
    if (!isObject(inputRequests)) throw new InputFailure(INTERNAL_ERROR, 'the upstream sent malformed inputRequests');
    const entries = Object.entries(inputRequests);
    const asks = entries.map(([key, req]) => ({ key, message: toClientRequest(session, key, req) }));
    if (this.#waiting.size + asks.length > this.#opts.maxPending) {
      throw new InputFailure(INTERNAL_ERROR, 'too many input requests are awaiting an answer on this gateway; try again later');
    }

    const keys: string[] = [];
    const answers = asks.map(({ key, message }) => new Promise<[string, Record<string, unknown>]>((resolve) => {
      const waitKey = `${session.nonce}\0${message.id}`;
      keys.push(waitKey);
      this.#waiting.set(waitKey, (response) => resolve([key, response]));
    }));
    // Registered before sent: an answer cannot overtake its own registration.
    for (const { message } of asks) stream.send(message);

    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const ended = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new InputFailure(REQUEST_TIMEOUT,
        `the client did not answer the upstream's request for input within ${this.#opts.timeoutMs} ms`)), this.#opts.timeoutMs);
      onAbort = () => reject(signal.reason ?? new Error('the exchange ended'));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const got = await Promise.race([Promise.all(answers), ended]);
      const responses: Record<string, unknown> = {};
      for (const [key, response] of got) {
        if (isObject(response.error)) {
          const e = response.error;
          throw new InputFailure(typeof e.code === 'number' ? e.code : INTERNAL_ERROR,
            `the client could not provide input "${key}": ${typeof e.message === 'string' ? e.message : 'error'}`, e.data);
        }
        responses[key] = response.result;
      }
      return responses;
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
      for (const k of keys) this.#waiting.delete(k);
    }
  }

  /** A JSON-RPC response from the client: true when it answered a request of its session. */
  accept(session: Session, response: Record<string, unknown>): boolean {
    if (typeof response.id !== 'string') return false;
    const key = `${session.nonce}\0${response.id}`;
    const waiter = this.#waiting.get(key);
    if (!waiter) return false;
    this.#waiting.delete(key);
    waiter(response);
    return true;
  }
}

/**
 * One input request as the 2025 client receives it, or an InputFailure when the client did not
 * declare what it takes to answer it (the upstream should not have asked; the client must not be).
 */
function toClientRequest(session: Session, key: string, req: unknown): { jsonrpc: '2.0'; id: string; method: string; params: Record<string, unknown> } {
  if (!isObject(req) || typeof req.method !== 'string') throw new InputFailure(INTERNAL_ERROR, `the upstream sent a malformed input request "${key}"`);
  const params: Record<string, unknown> = isObject(req.params) ? { ...req.params } : {};
  const missing = missingCapability(req.method, params, session.capabilities);
  if (missing) {
    throw new InputFailure(INTERNAL_ERROR,
      `the upstream needs input "${key}" (${req.method}) that this client did not declare it can provide`, { requiredCapabilities: missing });
  }
  if (req.method === 'elicitation/create') {
    if (params.mode === 'url' && typeof params.elicitationId !== 'string') {
      // 2025-11-25 requires an id on URL elicitations; 2026 dropped it (the retry says how it went).
      params.elicitationId = randomUUID();
    } else if (params.mode === 'form' && session.version < LEGACY_VERSION) {
      // Before 2025-11-25 every elicitation was a form and `mode` did not exist.
      delete params.mode;
    }
  }
  return { jsonrpc: '2.0', id: `gw-input-${randomUUID()}`, method: req.method, params };
}

/** The capabilities a request needs that the client did not declare; undefined when it may be sent. */
function missingCapability(method: string, params: Record<string, unknown>, caps: Record<string, unknown>): Record<string, unknown> | undefined {
  switch (method) {
    case 'elicitation/create': {
      const e = caps.elicitation;
      const mode = params.mode === 'url' ? 'url' : 'form';
      if (!isObject(e)) return { elicitation: { [mode]: {} } };
      // `elicitation: {}` declares forms only (the 2025-11-25 rule for clients older than modes).
      const ok = mode === 'url' ? isObject(e.url) : isObject(e.form) || !('url' in e);
      return ok ? undefined : { elicitation: { [mode]: {} } };
    }
    case 'sampling/createMessage': {
      const s = caps.sampling;
      if (!isObject(s)) return { sampling: {} };
      if (params.tools !== undefined && !isObject(s.tools)) return { sampling: { tools: {} } };
      return undefined;
    }
    case 'roots/list':
      return isObject(caps.roots) ? undefined : { roots: {} };
    default:
      return { [method]: 'unknown input request method' };
  }
}

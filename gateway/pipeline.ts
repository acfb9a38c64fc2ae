/**
 * Runs a route's plugins. This file knows hook semantics (order, first refusal wins, a throw fails
 * closed); gateway/proxy.ts decides when each stage runs.
 *
 * Request-side hooks run in the route's order; response-side hooks in reverse (onion), so the plugin
 * that changed a request first is the last to see the response.
 */
import type {
  Exchange, JSONRPCMessage, MessageContext, MessageVerdict, Outcome, Plugin, ResponseHead, Verdict,
} from './contract.ts';
import type { Refusal } from './errors.ts';
import { EXCHANGE_TRACE } from './tracing/spans.ts';

export class Pipeline {
  readonly plugins: readonly Plugin[];
  readonly #onRequest: Plugin[];
  readonly #onRequestMessage: Plugin[];
  readonly #onResponse: Plugin[];
  readonly #onResponseMessage: Plugin[];
  readonly #onDone: Plugin[];

  constructor(plugins: readonly Plugin[]) {
    this.plugins = plugins;
    this.#onRequest = plugins.filter((p) => p.onRequest);
    this.#onRequestMessage = plugins.filter((p) => p.onRequestMessage);
    this.#onResponse = plugins.filter((p) => p.onResponse).reverse();
    this.#onResponseMessage = plugins.filter((p) => p.onResponseMessage).reverse();
    this.#onDone = plugins.filter((p) => p.onDone).reverse();
  }

  get hasRequestHooks(): boolean {
    return this.#onRequest.length > 0;
  }

  get hasResponseHooks(): boolean {
    return this.#onResponse.length > 0;
  }

  /** Whether request bodies must be parsed into messages for this route. */
  get inspectsRequests(): boolean {
    return this.#onRequestMessage.length > 0;
  }

  /** Whether response bodies must be parsed into messages for this route. */
  get inspectsResponses(): boolean {
    return this.#onResponseMessage.length > 0;
  }

  /** Runs request hooks; the first refusal is returned. */
  request(x: Exchange): Promise<Refusal | undefined> {
    // (No closure unless traced: this runs per request.)
    const trace = x.get(EXCHANGE_TRACE);
    if (trace) return trace.timed('request hooks', () => runVerdictHooks(this.#onRequest, x, (p) => p.onRequest!(x)));
    return runVerdictHooks(this.#onRequest, x, (p) => p.onRequest!(x));
  }

  /** Runs response-head hooks (reverse order); the first refusal is returned. */
  response(head: ResponseHead, x: Exchange): Promise<Refusal | undefined> {
    // (No closure unless traced: this runs per request.)
    const trace = x.get(EXCHANGE_TRACE);
    if (trace) return trace.timed('response hooks', () => runVerdictHooks(this.#onResponse, x, (p) => p.onResponse!(head, x)));
    return runVerdictHooks(this.#onResponse, x, (p) => p.onResponse!(head, x));
  }

  /** Runs message hooks for one message in the given direction. */
  message(msg: JSONRPCMessage, x: Exchange, ctx: MessageContext): Promise<MessageOutcome> | MessageOutcome {
    const list = ctx.direction === 'request' ? this.#onRequestMessage : this.#onResponseMessage;
    return runMessageHooks(list, msg, x, ctx);
  }

  /** Runs completion hooks; a throwing (or rejecting) hook is logged and the others still run. */
  done(x: Exchange, outcome: Outcome): void {
    for (const p of this.#onDone) {
      try {
        // Typed as void, but a plugin author may well write `async onDone`: its rejection is caught too.
        const r = p.onDone!(x, outcome) as unknown;
        if (r && typeof (r as Promise<unknown>).then === 'function') {
          (r as Promise<unknown>).then(undefined, (err: unknown) => x.log.error({ err, plugin: p.name }, 'onDone hook failed'));
        }
      } catch (err) {
        x.log.error({ err, plugin: p.name }, 'onDone hook threw');
      }
    }
  }
}

/** Calls one HTTP-level hook per plugin, in order, until one refuses; a throw fails closed. */
async function runVerdictHooks(
  list: Plugin[], x: Exchange, call: (p: Plugin) => Verdict | void | Promise<Verdict | void>,
): Promise<Refusal | undefined> {
  for (const p of list) {
    let v: Verdict | void | Promise<Verdict | void>;
    try {
      v = call(p);
      // Only a real promise costs an await: most hooks answer synchronously.
      if (v && typeof (v as Promise<unknown>).then === 'function') v = await v;
    } catch (err) {
      return pluginFailure(p, err, x);
    }
    const r = verdictToRefusal(v as Verdict | void, p);
    if (r) return r;
  }
  return undefined;
}

export type MessageOutcome =
  | { kind: 'forward'; message: JSONRPCMessage }
  | { kind: 'drop'; plugin: string }
  | { kind: 'reject'; refusal: Refusal };

async function runMessageHooks(
  list: Plugin[], msg: JSONRPCMessage, x: Exchange, ctx: MessageContext,
): Promise<MessageOutcome> {
  let current = msg;
  for (const p of list) {
    let v: MessageVerdict | void | Promise<MessageVerdict | void>;
    try {
      const hook = ctx.direction === 'request' ? p.onRequestMessage! : p.onResponseMessage!;
      v = hook.call(p, current, x, ctx);
      if (v && typeof (v as Promise<unknown>).then === 'function') v = await v;
    } catch (err) {
      return { kind: 'reject', refusal: pluginFailure(p, err, x) };
    }
    const verdict = v as MessageVerdict | void;
    if (!verdict || verdict.kind === 'pass') continue;
    if (verdict.kind === 'replace') current = verdict.message;
    else if (verdict.kind === 'drop') return { kind: 'drop', plugin: p.name };
    else {
      return {
        kind: 'reject',
        refusal: {
          status: verdict.httpStatus ?? 200,
          headers: verdict.httpHeaders,
          rpcCode: verdict.rpcCode,
          code: verdict.code,
          message: verdict.message,
          data: verdict.data,
          plugin: p.name,
        },
      };
    }
  }
  return { kind: 'forward', message: current };
}

function verdictToRefusal(v: Verdict | void, p: Plugin): Refusal | undefined {
  if (!v || v.kind === 'continue') return undefined;
  return {
    status: v.status,
    code: v.code,
    message: v.message,
    headers: v.headers,
    data: v.data,
    rpcCode: v.status === 404 ? -32001 : -32000,
    plugin: p.name,
  };
}

/** A plugin that throws fails closed: the exchange is refused and the error is logged, not shown. */
function pluginFailure(p: Plugin, err: unknown, x: Exchange): Refusal {
  x.log.error({ err, plugin: p.name }, 'plugin hook threw; refusing the exchange (fail closed)');
  return {
    status: 500,
    rpcCode: -32603,
    code: 'GW_ERR_PLUGIN_FAILED',
    message: `the gateway plugin "${p.name}" failed while handling this request; see the gateway log (exchange ${x.id})`,
    plugin: p.name,
  };
}

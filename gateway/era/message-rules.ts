/**
 * What the core itself does to messages of either era, before the plugins see them:
 *
 * - A multi round-trip `requestState` (2026) is the upstream's opaque state. The client gets it
 *   sealed (AES-GCM, bound to the principal, the route and the originating request's method and
 *   name) and must send back exactly that: the gateway opens it and the upstream gets its own bytes
 *   back. A state another principal received, one minted for another tool, or an altered one is
 *   refused (400, -32602, GW_ERR_REQUEST_STATE_INVALID), so a tenant cannot replay another's.
 * - `tools/list` answers teach the upstream's `x-mcp-header` declarations; a list change forgets them.
 */
import { type JSONRPCMessage, type JSONRPCRequest } from '../contract.ts';
import { coreRefusal, type Refusal } from '../errors.ts';
import type { ExchangeRun } from '../proxy.ts';
import { SEAL_KIND } from '../session-seal.ts';
import { NAMED_METHODS } from './versions.ts';

export interface MessageRules {
  /** A client message: the message to go on, or a refusal. */
  request(m: JSONRPCMessage): JSONRPCMessage | Refusal;
  /** An upstream message, with the request it answers when known. */
  response(m: JSONRPCMessage, request: JSONRPCRequest | undefined): JSONRPCMessage;
}

export function messageRules(run: ExchangeRun): MessageRules {
  const binding = (method: unknown, params: Record<string, unknown>) => {
    const field = typeof method === 'string' ? NAMED_METHODS[method] : undefined;
    const name = field ? params[field] : undefined;
    return `${run.route.info.name}\0${String(method)}\0${typeof name === 'string' ? name : ''}`;
  };
  return {
    request(m) {
      const { method, params } = m as { method?: unknown; params?: unknown };
      if (!isObject(params) || !('requestState' in params) || typeof method !== 'string') return m;
      const sealed = params.requestState;
      const opened = typeof sealed === 'string'
        ? run.env.sealer.open(SEAL_KIND.requestState, sealed, run.owner!, binding(method, params))
        : undefined;
      if (!opened || !opened.ownerMatches) {
        return coreRefusal('GW_ERR_REQUEST_STATE_INVALID',
          'Invalid params: requestState was not issued to this caller for this request (or was altered); start the request again without it');
      }
      return { ...m, params: { ...params, requestState: opened.payload } } as JSONRPCMessage;
    },
    response(m, request) {
      const result = (m as { result?: unknown }).result;
      if (!isObject(result)) {
        if ((m as { method?: unknown }).method === 'notifications/tools/list_changed') run.upstream.toolHeaders.forget();
        return m;
      }
      if (request?.method === 'tools/list') run.upstream.toolHeaders.learn(result);
      if (result.resultType !== 'input_required' || typeof result.requestState !== 'string') return m;
      const params = isObject(request?.params) ? request.params : {};
      const sealed = run.env.sealer.seal(SEAL_KIND.requestState, result.requestState, run.owner!, binding(request?.method, params));
      return { ...m, result: { ...result, requestState: sealed } } as JSONRPCMessage;
    },
  };
}

/** Whether this exchange's messages get the rules: both directions must be decoded, or a state
 *  sealed on the way out could not be opened on the way back (and vice versa). */
export function rulesApply(run: ExchangeRun): boolean {
  return run.pipeline.inspectsResponses;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * What the audit's exchange line says about the calls an exchange carried and the client that made
 * them: which tool, resource or prompt, and how each call ended. An auditor asks "who called tool X,
 * from where, and did it work", and an `isError: true` tool result is a failure the HTTP status (200)
 * and the JSON-RPC envelope (a result, not an error) both hide.
 *
 * Outcomes need the messages, so they ride on the message hooks the audit plugin installs with
 * `messages: true` (the default). With `messages: false` the route keeps streaming bytes unread and the
 * exchange line carries no calls.
 */
import { BlockList, isIP } from 'node:net';
import { Key, type Exchange, type JSONRPCMessage, type Outcome } from '../gateway/contract.ts';
import { idKey, idOf, isRequest, isResponse } from '../gateway/jsonrpc.ts';

/**
 * `ok`; `tool_error`: a tools/call result with `isError: true` (the tool ran and failed); `error`: a
 * JSON-RPC error answer (`rpcError` has its code); `refused`: refused by the gateway or a plugin
 * (`refusal` says by whom and why); `unanswered`: the exchange ended before its answer.
 */
export type CallOutcome = 'ok' | 'tool_error' | 'error' | 'refused' | 'unanswered';

interface Call {
  id: string | number;
  method: string;
  target: Target;
  outcome?: CallOutcome;
  rpcError?: RpcError;
}

interface Target {
  tool?: string;
  resource?: string;
  prompt?: string;
}

export interface Answer {
  outcome: CallOutcome;
  rpcError?: RpcError;
}

interface RpcError {
  code?: number;
  /** The gateway's `GW_ERR_…` code when the gateway or a plugin made the error. */
  gatewayCode?: string;
}

/** One exchange's requests in the order the client sent them (a batch has several). */
const CALLS = new Key<Call[]>('audit.calls');
/** More in one batch are left off the exchange line (a line stays a line); their message lines still name them. */
const MAX_CALLS = 50;

/** Client-chosen text is bounded. */
export const text = (v: unknown, max = 256) => (typeof v === 'string' ? v.slice(0, max) : undefined);

/** The tool, resource or prompt a request names. */
export function targetOf(m: unknown): Target {
  const e = m as { method?: unknown; params?: { name?: unknown; uri?: unknown } } | undefined;
  switch (e?.method) {
    case 'tools/call': return { tool: text(e.params?.name) };
    case 'prompts/get': return { prompt: text(e.params?.name) };
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe': return { resource: text(e.params?.uri, 1024) };
    default: return {};
  }
}

/** How an answer ended; undefined for a request or a notification. */
export function answerOutcome(m: JSONRPCMessage): Answer | undefined {
  if (!isResponse(m)) return undefined;
  const e = m as { result?: { isError?: unknown }; error?: { code?: unknown; data?: { code?: unknown } } };
  if (e.error !== undefined) {
    const code = typeof e.error?.code === 'number' ? e.error.code : undefined;
    const gw = text(e.error?.data?.code, 64);
    return { outcome: 'error', rpcError: { code, gatewayCode: gw?.startsWith('GW_ERR_') ? gw : undefined } };
  }
  return { outcome: e.result?.isError === true ? 'tool_error' : 'ok' };
}

/** Remembers a client request of this exchange (message hook, request direction). */
export function noteRequest(x: Exchange, m: JSONRPCMessage): void {
  if (!isRequest(m)) return;
  let calls = x.get(CALLS);
  if (!calls) x.set(CALLS, (calls = []));
  if (calls.length < MAX_CALLS) calls.push({ id: m.id, method: m.method, target: targetOf(m) });
}

/**
 * Records the answer to one of this exchange's requests (message hook, response direction) and returns
 * how it ended. A server's own request on the stream is no answer, even when its id (the server's id
 * space) equals a client request's.
 */
export function noteAnswer(x: Exchange, m: JSONRPCMessage): Answer | undefined {
  const answer = answerOutcome(m);
  const call = answer && find(x.get(CALLS), idOf(m));
  if (call) Object.assign(call, answer);
  return answer;
}

function find(calls: Call[] | undefined, id: string | number | null): Call | undefined {
  if (!calls || id === null) return undefined;
  const key = idKey(id);
  return calls.find((c) => idKey(c.id) === key);
}

/**
 * The exchange line's call fields: a lone request's are flat (`rpcMethod`, `tool`, `outcome` …), a
 * batch's are in `calls`. Refusals come from the outcome, since a refused request never reaches the
 * upstream and its answer is the gateway's own.
 */
export function callFields(x: Exchange, o: Outcome): Record<string, unknown> {
  const calls = x.get(CALLS);
  if (!calls || calls.length === 0) return {};
  const refusalOf = (c: Call) => o.messageRefusals.find((r) => r.id !== null && idKey(r.id) === idKey(c.id));
  const fields = calls.map((c) => {
    const refused = refusalOf(c);
    // A legacy (HTTP+SSE) POST is answered on the session's GET stream: its message lines say how.
    const outcome = refused || (o.refusal && calls.length === 1) ? 'refused'
      : c.outcome ?? (x.transport === 'sse' ? undefined : 'unanswered');
    return { rpcMethod: c.method, rpcId: c.id, ...c.target, outcome, rpcError: c.rpcError };
  });
  return calls.length === 1 ? fields[0] : { calls: fields };
}

/** Trusted proxies by address or CIDR; undefined when none are configured. */
export function trustList(entries: readonly string[]): BlockList | undefined {
  if (entries.length === 0) return undefined;
  const list = new BlockList();
  for (const entry of entries) {
    const [addr, bits] = entry.split('/');
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is written as `10.0.0.1`. */
const plain = (a: string) => (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a);
const trusted = (list: BlockList, a: string) => list.check(a, isIP(a) === 6 ? 'ipv6' : 'ipv4');

/**
 * The client's address: the socket's peer, and, only when that peer is a configured trusted proxy,
 * the address it forwarded: the nearest `X-Forwarded-For` entry that is not itself a trusted proxy.
 * Without `trustedProxies` the header is client-written text and is not logged as an address.
 */
export function clientFields(x: Exchange, proxies: BlockList | undefined): Record<string, unknown> {
  const peer = x.req.socket.remoteAddress;
  const remoteAddress = peer === undefined ? undefined : plain(peer);
  const userAgent = text(x.req.headers['user-agent']);
  if (!proxies || !remoteAddress || !trusted(proxies, remoteAddress)) return { remoteAddress, userAgent };
  const header = x.req.headers['x-forwarded-for'];
  const hops = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((h) => plain(h.trim())).filter(Boolean);
  let forwardedFor: string | undefined;
  for (let i = hops.length - 1; i >= 0; i--) {
    if (isIP(hops[i]) === 0) break; // not an address: nothing left of it can be trusted either
    forwardedFor = hops[i];
    if (!trusted(proxies, hops[i])) break;
  }
  return { remoteAddress, forwardedFor, userAgent };
}

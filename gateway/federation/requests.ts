/**
 * A client's messages on a federated session: lists merged, calls routed by name, reads by URI, log
 * levels and notifications fanned out, answers to members' requests returned to the member that asked.
 */
import type { Logger } from 'pino';
import { idKey, type JSONRPCNotification, type JSONRPCRequest } from '../jsonrpc.ts';
import { readBody } from '../era/upstream-read.ts';
import type { UpstreamCall, UpstreamResponse } from '../runtime.ts';
import { deadline, LIST_KINDS, listAll, memberForUri, type ListContext, type Table } from './catalog.ts';
import { MemberError, type Member, type MemberSession } from './members.ts';
import { splitPrefixed, type MemberName, type Naming } from './names.ts';
import { json, readAskedId, relay, rpcError, rpcResult } from './relay.ts';
import { isRecord, type FederationSession, type SessionState } from './session.ts';
import type { FederationConfig } from './types.ts';

/** What message handling needs of the federation (index.ts). */
export interface Core {
  readonly cfg: FederationConfig;
  readonly naming: Naming;
  readonly log: Logger;
  readonly byName: ReadonlyMap<string, Member>;
  readonly byTag: ReadonlyMap<string, Member>;
  readonly maxMessageBytes: number;
  visible(call: UpstreamCall): Member[];
  listContext(call: UpstreamCall, fs: FederationSession, state: SessionState): ListContext;
  report(member: Member, failure: string | undefined): void;
}

/** Session context of one message. */
interface On {
  core: Core;
  call: UpstreamCall;
  fs: FederationSession;
  state: SessionState;
}

const NAMED: Readonly<Record<string, { list: string; label: string }>> = {
  'tools/call': { list: 'tools/list', label: 'tool' },
  'prompts/get': { list: 'prompts/list', label: 'prompt' },
};
/** The federation's own refusal of a request's parameters (it answers as the server here). */
const INVALID_PARAMS = 'GW_ERR_FEDERATION_INVALID_PARAMS';
const BY_URI = new Set(['resources/read', 'resources/subscribe', 'resources/unsubscribe']);

export async function handleRequest(on: On, msg: JSONRPCRequest): Promise<UpstreamResponse> {
  const { core, call, fs, state } = on;
  const params = isRecord(msg.params) ? msg.params : {};
  const kind = LIST_KINDS[msg.method];
  if (kind) {
    if (params.cursor !== undefined) return rpcError(msg.id, -32602, 'Invalid params: this server lists everything on one page and gave no cursor', INVALID_PARAMS);
    const table = await listAll(core.listContext(call, fs, state), call, state, core.visible(call), kind);
    if (table.collision) return rpcError(msg.id, -32000, table.collision, 'GW_ERR_FEDERATION_NAME_COLLISION');
    return rpcResult(msg.id, { [kind.field]: table.items });
  }
  const named = NAMED[msg.method];
  if (named) {
    const exposed = params.name;
    if (typeof exposed !== 'string') return rpcError(msg.id, -32602, `Invalid params: the ${named.label} name is missing`, INVALID_PARAMS);
    const target = await resolveName(on, named.list, exposed);
    if (!target) return rpcError(msg.id, -32602, `Unknown ${named.label}: ${exposed}`, 'GW_ERR_FEDERATION_UNKNOWN_NAME');
    return forward(on, target.member, { ...msg, params: { ...params, name: target.name } }, `the ${named.label} "${exposed}"`);
  }
  if (BY_URI.has(msg.method)) {
    const uri = params.uri;
    if (typeof uri !== 'string') return rpcError(msg.id, -32602, 'Invalid params: uri is missing', INVALID_PARAMS);
    const found = await resolveUri(on, uri);
    if (typeof found === 'object') {
      return rpcError(msg.id, -32000, `the resource "${uri}" matches the templates of several servers (${found.ambiguous.join(', ')}), so the gateway cannot tell where to read it`, 'GW_ERR_FEDERATION_NAME_COLLISION');
    }
    if (found === undefined) return rpcError(msg.id, -32002, `Resource not found: ${uri}`, 'GW_ERR_FEDERATION_UNKNOWN_NAME');
    return forward(on, found, msg, `the resource "${uri}"`);
  }
  if (msg.method === 'completion/complete') return complete(on, msg, params);
  if (msg.method === 'logging/setLevel') return setLevel(on, msg, params);
  if (msg.method === 'ping') return rpcResult(msg.id, {});
  return rpcError(msg.id, -32601, `Method not found: ${msg.method} is not offered by this federated server`, 'GW_ERR_FEDERATION_METHOD_NOT_FOUND');
}

/** The member and own name behind an exposed name, as the caller's last listing showed it. */
async function resolveName(on: On, list: string, exposed: string): Promise<MemberName | undefined> {
  const visible = on.core.visible(on.call);
  const { naming } = on.core;
  if (naming.mode === 'always') return splitPrefixed(exposed, naming, visible.map((m) => m.name));
  let hit = on.state.tables.get(list)?.byName.get(exposed);
  if (!hit) hit = (await listAll(on.core.listContext(on.call, on.fs, on.state), on.call, on.state, visible, LIST_KINDS[list])).byName.get(exposed);
  // Visibility is the caller's now, not at listing time.
  return hit && visible.some((m) => m.name === hit.member) ? hit : undefined;
}

async function resolveUri(on: On, uri: string): Promise<string | undefined | { ambiguous: string[] }> {
  const { core, call, fs, state } = on;
  const visible = core.visible(call);
  const offering = () => visible.filter((m) => state.sessionOf(fs, m.name)?.caps.includes('r'));
  let resources = state.tables.get('resources/list');
  let templates = state.tables.get('resources/templates/list');
  let found = resources ? memberForUri(uri, resources, templates, offering()) : undefined;
  if (found === undefined) {
    const ctx = core.listContext(call, fs, state);
    [resources, templates] = await Promise.all([
      listAll(ctx, call, state, visible, LIST_KINDS['resources/list']),
      listAll(ctx, call, state, visible, LIST_KINDS['resources/templates/list']),
    ]);
    found = memberForUri(uri, resources, templates, offering());
  }
  if (typeof found === 'string' && !visible.some((m) => m.name === found)) return undefined;
  return found;
}

async function complete(on: On, msg: JSONRPCRequest, params: Record<string, unknown>): Promise<UpstreamResponse> {
  const ref = isRecord(params.ref) ? params.ref : {};
  if (ref.type === 'ref/prompt' && typeof ref.name === 'string') {
    const target = await resolveName(on, 'prompts/list', ref.name);
    if (!target) return rpcError(msg.id, -32602, `Unknown prompt: ${ref.name}`, 'GW_ERR_FEDERATION_UNKNOWN_NAME');
    return forward(on, target.member, { ...msg, params: { ...params, ref: { ...ref, name: target.name } } }, `the prompt "${ref.name}"`);
  }
  if (ref.type === 'ref/resource' && typeof ref.uri === 'string') {
    const { core, call, fs, state } = on;
    let templates = state.tables.get('resources/templates/list');
    if (!templates?.templates.some((t) => t.uriTemplate === ref.uri)) {
      templates = await listAll(core.listContext(call, fs, state), call, state, core.visible(call), LIST_KINDS['resources/templates/list']);
    }
    const owner = templates.templates.find((t) => t.uriTemplate === ref.uri)?.member;
    if (!owner) return rpcError(msg.id, -32602, `Unknown resource template: ${ref.uri}`, 'GW_ERR_FEDERATION_UNKNOWN_NAME');
    return forward(on, owner, msg, `the resource template "${ref.uri}"`);
  }
  return rpcError(msg.id, -32602, 'Invalid params: ref must name a prompt or a resource template', INVALID_PARAMS);
}

/** The level goes to every member session open now that logs, and to those opened later. */
async function setLevel(on: On, msg: JSONRPCRequest, params: Record<string, unknown>): Promise<UpstreamResponse> {
  const { core, call, fs, state } = on;
  if (typeof params.level !== 'string') return rpcError(msg.id, -32602, 'Invalid params: level is missing', INVALID_PARAMS);
  state.level = params.level;
  const signal = deadline(call.signal, core.cfg.listTimeoutMs);
  await Promise.all(core.visible(call).map(async (m) => {
    const session = state.sessionOf(fs, m.name);
    if (!session?.caps.includes('l')) return;
    await m.ask(call, session, 'logging/setLevel', { level: params.level }, signal).catch((err: Error) => core.log.debug({ member: m.name, err: err.message }, 'setLevel not taken'));
  }));
  return rpcResult(msg.id, {});
}

/**
 * Sends a request on to the member and relays its answer. A member that says it no longer knows the
 * session did not run the request, so it is sent once more on a new session; nothing else is retried.
 */
async function forward(on: On, memberName: string, msg: JSONRPCRequest, what: string): Promise<UpstreamResponse> {
  const { core, call, fs, state } = on;
  const member = core.byName.get(memberName)!;
  const key = idKey(msg.id as string | number);
  state.inFlight.set(key, member.name);
  const done = () => { if (state.inFlight.get(key) === member.name) state.inFlight.delete(key); };
  const body = Buffer.from(JSON.stringify(msg));
  for (let attempt = 0; ; attempt++) {
    let session: MemberSession;
    let res: UpstreamResponse;
    try {
      // (A session at hand needs no deadline: the timer and combined signal cost more than the lookup.)
      session = state.sessionOf(fs, member.name)
        ?? await core.listContext(call, fs, state).sessionFor(member, deadline(call.signal, core.cfg.listTimeoutMs));
      res = await member.send(call, 'POST', body, session, call.signal);
    } catch (err) {
      done();
      const failure = err instanceof MemberError ? err : new MemberError(String(err), { code: 'GW_ERR_UPSTREAM_UNREACHABLE' });
      if (!call.signal.aborted) core.report(member, failure.message);
      const next = failure.code === 'GW_ERR_UPSTREAM_AUTH' ? 'the gateway\'s operator must fix the upstream\'s credential' : 'try again later';
      return rpcError(msg.id, -32000, `${what} is unavailable: its server ${failure.message}; ${next}`, failure.code);
    }
    if (res.statusCode < 400) return relay(res, member.tag, core.maxMessageBytes, done);
    const text = (await readBody(res, 65536).catch(() => Buffer.alloc(0))).toString('utf8');
    if (attempt === 0 && session.id !== undefined && (res.statusCode === 404 || (res.statusCode === 400 && /session/i.test(text)))) {
      state.forget(member.name);
      continue;
    }
    done();
    const own = parsed(text);
    // The member's own JSON-RPC error for this request says more than its status.
    if (own && own.id === msg.id && isRecord(own.error)) return json(200, own);
    const auth = res.statusCode === 401 || res.statusCode === 403;
    core.log.warn({ member: member.name, status: res.statusCode }, auth ? 'federation member refused the gateway\'s credential' : 'federation member answered an HTTP error');
    return rpcError(msg.id, -32000, auth
      ? `${what} is unavailable: its server refused the gateway's credential (HTTP ${res.statusCode}); the gateway's operator must fix the upstream's headers`
      : `${what} failed: its server answered HTTP ${res.statusCode}`, auth ? 'GW_ERR_UPSTREAM_AUTH' : 'GW_ERR_UPSTREAM_BAD_RESPONSE');
  }
}

function parsed(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Client notifications: cancellation to the member running the request, the rest to every open member session. */
export async function handleNotification(on: On, msg: JSONRPCNotification): Promise<void> {
  const { core, call, fs, state } = on;
  if (msg.method === 'notifications/initialized') return;
  let targets = core.visible(call).filter((m) => state.sessionOf(fs, m.name));
  if (msg.method === 'notifications/cancelled') {
    const requestId = isRecord(msg.params) ? msg.params.requestId : undefined;
    const running = typeof requestId === 'string' || typeof requestId === 'number' ? state.inFlight.get(idKey(requestId)) : undefined;
    // Another replica's request: every member hears it; those that never had the id ignore it.
    if (running) targets = targets.filter((m) => m.name === running);
  } else if (msg.method !== 'notifications/roots/list_changed') {
    return;
  }
  const signal = deadline(call.signal, core.cfg.listTimeoutMs);
  await Promise.all(targets.map((m) => m.tell(call, state.sessionOf(fs, m.name)!, msg, signal).catch(() => 0)));
}

/** The client's answer to a member's request goes back to that member, under the member's own id. */
export async function handleAnswer(on: On, msg: { id?: unknown }): Promise<void> {
  const { core, call, fs, state } = on;
  const asked = readAskedId(msg.id);
  const member = asked ? core.byTag.get(asked.tag) : undefined;
  const session = member ? state.sessionOf(fs, member.name) : undefined;
  if (!asked || !member || !session || !member.visibleTo(call.principal)) {
    core.log.debug({ id: msg.id }, 'an answer to no request of a federation member; dropped');
    return;
  }
  await member.tell(call, session, { ...msg, id: asked.id }, deadline(call.signal, core.cfg.listTimeoutMs))
    .catch((err: Error) => core.log.warn({ member: member.name, err: err.message }, 'could not pass the client\'s answer to the federation member'));
}

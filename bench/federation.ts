/**
 * The federation row: the request rows' `tools/call`, sent through a gateway route whose upstream is a
 * federation (docs/federation.md) with one member, the bench upstream, every name prefixed
 * (`prefix: always`, member prefix `bench`), so the tool is `bench__query_graph`. No plugins: the row
 * shows what the federation adds to the no-plugin route, which relays bytes — ending the client's
 * session itself, parsing each message, routing `tools/call` by name to the member, relaying its answer.
 *
 * A federation serves only clients that initialized. Before the probe the row sends `initialize`
 * (which opens the member's session) and `notifications/initialized`, checks both answers and that
 * `tools/list` shows the prefixed tool; every later request carries the session id it got and
 * `mcp-protocol-version: 2025-11-25`, as an MCP client would.
 */
import { startGatewayChild, gatewayAvailable, type BenchCredentials } from './gateway-rows.ts';
import type { BenchChild } from './processes.ts';

export const FEDERATION_ROW = { id: 'federation', label: 'federation (one member)' } as const;
/** The member's prefix, and the tool's name as the federation exposes it. */
export const MEMBER_PREFIX = 'bench';
export const FEDERATED_TOOL = `${MEMBER_PREFIX}__query_graph`;
/** The protocol revision the row's client speaks (the federation is a 2025-era server). */
export const FEDERATION_PROTOCOL = '2025-11-25';

/** The upstreams the row's gateway.yaml adds beside `up` (the bench upstream); its route names `fed`. */
export function federationUpstreams(): Record<string, unknown> {
  return { fed: { federation: { prefix: 'always', members: { up: { prefix: MEMBER_PREFIX } } } } };
}

/** The request rows' tool call with the tool's federated name. */
export function federatedToolCall(toolCall: string): string {
  const msg = JSON.parse(toolCall) as { params: { name: string } };
  msg.params.name = FEDERATED_TOOL;
  return JSON.stringify(msg);
}

const BASE_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': FEDERATION_PROTOCOL,
};

/** The one JSON-RPC message of an answer, JSON or a single SSE event. */
async function messageOf(res: Response, what: string): Promise<Record<string, unknown>> {
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${what} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
  const data = (res.headers.get('content-type') ?? '').includes('text/event-stream')
    ? text.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n')
    : text;
  try {
    return JSON.parse(data) as Record<string, unknown>;
  } catch {
    throw new Error(`${what} answered something that is not JSON-RPC: ${text.slice(0, 200)}`);
  }
}

/**
 * Opens a session on the federation as an MCP client does; resolves to the headers every later
 * request of the row carries. Throws, saying what was wrong, when any step is not answered as it should.
 */
export async function initializeSession(url: string): Promise<Record<string, string>> {
  const init = await fetch(url, {
    method: 'POST',
    headers: BASE_HEADERS,
    body: JSON.stringify({
      jsonrpc: '2.0', id: 0, method: 'initialize',
      params: { protocolVersion: FEDERATION_PROTOCOL, capabilities: {}, clientInfo: { name: 'mcpgw-bench', version: '1.0.0' } },
    }),
  });
  const session = init.headers.get('mcp-session-id');
  const answer = await messageOf(init, 'initialize');
  const result = answer.result as { protocolVersion?: unknown; capabilities?: { tools?: unknown } } | undefined;
  if (typeof result?.protocolVersion !== 'string' || !result.capabilities?.tools) {
    throw new Error(`initialize answered without protocolVersion and capabilities.tools: ${JSON.stringify(answer).slice(0, 200)}`);
  }
  if (!session) throw new Error('initialize answered without an mcp-session-id header');
  const headers = { 'mcp-session-id': session, 'mcp-protocol-version': FEDERATION_PROTOCOL };

  const note = await fetch(url, { method: 'POST', headers: { ...BASE_HEADERS, ...headers }, body: '{"jsonrpc":"2.0","method":"notifications/initialized"}' });
  const noteText = await note.text();
  if (note.status !== 202) throw new Error(`notifications/initialized answered HTTP ${note.status}: ${noteText.slice(0, 200)}`);

  // The member's session works and its tool has the name the row calls.
  const list = await fetch(url, { method: 'POST', headers: { ...BASE_HEADERS, ...headers }, body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' });
  const tools = ((await messageOf(list, 'tools/list')).result as { tools?: Array<{ name?: unknown }> } | undefined)?.tools;
  if (!tools?.some((t) => t.name === FEDERATED_TOOL)) {
    throw new Error(`tools/list does not show ${FEDERATED_TOOL}: ${JSON.stringify(tools ?? null).slice(0, 200)}`);
  }
  return headers;
}

/** The row as the request loop measures it (run.ts's Target). */
export interface FederationTarget {
  id: string;
  label: string;
  url: string;
  pid: number;
  headers: Record<string, string>;
  body: string;
  output: () => string;
}

/**
 * Starts the row's gateway (its child joins `children`, so the run stops it) and opens the session.
 * Resolves to the target, or to a note saying why the row cannot run.
 */
export async function startFederationRow(opts: {
  baseDir: string;
  upstreamUrl: string;
  creds: BenchCredentials;
  children: BenchChild[];
  toolCall: string;
  log: (line: string) => void;
}): Promise<{ target: FederationTarget } | { note: string }> {
  if (!gatewayAvailable()) return { note: 'gateway/main.ts does not exist yet' };
  const variant = { id: FEDERATION_ROW.id, label: FEDERATION_ROW.label, needs: [], plugins: () => [], auth: false };
  let gw;
  try {
    opts.log(`starting ${FEDERATION_ROW.label}`);
    gw = await startGatewayChild(variant, opts.baseDir, opts.upstreamUrl, opts.creds, { upstreams: federationUpstreams(), route: { upstream: 'fed' } });
  } catch (err) {
    return { note: `gateway did not start: ${(err as Error).message.split('\n').slice(0, 3).join(' / ')}` };
  }
  opts.children.push(gw.child);
  try {
    const headers = await initializeSession(gw.url);
    return {
      target: { ...FEDERATION_ROW, url: gw.url, pid: gw.child.pid, headers, body: federatedToolCall(opts.toolCall), output: gw.child.output },
    };
  } catch (err) {
    const last = gw.child.output().trim().split('\n').slice(-2).join(' / ').slice(0, 600);
    return { note: `${(err as Error).message}${last ? `; its last output: ${last}` : ''}` };
  }
}

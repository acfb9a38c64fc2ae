/**
 * A small scripted MCP server (2025 era, sessions) on the recording upstream, for the federation's
 * fault tests: it lists the tools it is given, answers `tools/call` with the name and arguments it
 * received (so a test sees what reached it), and can be switched to fail in precise ways.
 */
import { startRecordingUpstream, type RecordedRequest, type RecordingUpstream, type Reply } from '../helpers/recording-upstream.ts';

export interface ScriptedMember {
  upstream: RecordingUpstream;
  /** `http://127.0.0.1:<port>/mcp` */
  url: string;
  /** How the next requests fail: never answer listings, refuse everything with a status, forget sessions. */
  fail(mode: Failure): void;
  /** JSON-RPC messages received, by method (`initialize`, `tools/call`, …). */
  received(method: string): Array<{ params?: Record<string, unknown>; headers: RecordedRequest['headers'] }>;
  close(): Promise<void>;
}

type Failure = 'none' | 'hang-lists' | 'hang-calls' | 'hang-initialize' | 'status-401' | 'forget-sessions';

export async function startScriptedMember(name: string, tools: string[], opts: { prompts?: string[]; resources?: string[] } = {}): Promise<ScriptedMember> {
  let mode: Failure = 'none';
  let sessions = 0;
  const live = new Set<string>();
  const upstream = await startRecordingUpstream((req): Reply => {
    const msg = req.json as { id?: unknown; method?: string; params?: Record<string, unknown> } | undefined;
    if (mode === 'status-401') return { kind: 'json', status: 401, body: { error: 'invalid_token' } };
    if (req.method !== 'POST' || !msg) return { kind: 'text', status: 405 };
    if (msg.method === 'initialize') {
      if (mode === 'hang-initialize') return { kind: 'never' };
      const id = `${name}-session-${++sessions}`;
      live.add(id);
      return {
        kind: 'json',
        headers: { 'mcp-session-id': id },
        body: {
          jsonrpc: '2.0', id: msg.id,
          result: { protocolVersion: '2025-11-25', capabilities: { tools: {}, prompts: {}, resources: {} }, serverInfo: { name, version: '1' } },
        },
      };
    }
    const session = String(req.headers['mcp-session-id'] ?? '');
    if (mode === 'forget-sessions' || !live.has(session)) {
      live.delete(session);
      if (mode === 'forget-sessions') mode = 'none';
      return { kind: 'json', status: 404, body: { jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } } };
    }
    if (msg.id === undefined) return { kind: 'text', status: 202 };
    const ok = (result: unknown): Reply => ({ kind: 'json', body: { jsonrpc: '2.0', id: msg.id, result } });
    switch (msg.method) {
      case 'tools/list':
        if (mode === 'hang-lists') return { kind: 'never' };
        return ok({ tools: tools.map((t) => ({ name: t, description: `${name}'s ${t}`, inputSchema: { type: 'object' } })) });
      case 'prompts/list':
        return ok({ prompts: (opts.prompts ?? []).map((p) => ({ name: p })) });
      case 'resources/list':
        return ok({ resources: (opts.resources ?? []).map((uri) => ({ uri, name: uri })) });
      case 'resources/templates/list':
        return ok({ resourceTemplates: [] });
      case 'tools/call':
        if (mode === 'hang-calls') return { kind: 'never' };
        return ok({ content: [{ type: 'text', text: `${name} ran ${String(msg.params?.name)} ${JSON.stringify(msg.params?.arguments ?? {})}` }] });
      case 'resources/read':
        return ok({ contents: [{ uri: msg.params?.uri, text: `${name} read ${String(msg.params?.uri)}` }] });
      default:
        return { kind: 'json', body: { jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'Method not found' } } };
    }
  });
  return {
    upstream,
    url: `${upstream.url}/mcp`,
    fail: (m) => { mode = m; },
    received: (method) => upstream.requests
      .filter((r) => (r.json as { method?: string } | undefined)?.method === method)
      .map((r) => ({ params: (r.json as { params?: Record<string, unknown> }).params, headers: r.headers })),
    close: () => upstream.close(),
  };
}

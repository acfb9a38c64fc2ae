/**
 * A server-under-test for the MCP conformance suite (`@modelcontextprotocol/conformance` server
 * scenarios), written on SDK v2 (`@modelcontextprotocol/server` + `@modelcontextprotocol/node`).
 *
 * It carries the fixtures the suite's server scenarios look for by name (tools `test_*`, resources
 * `test://…`, prompts `test_*`) and speaks both wires on one endpoint:
 * - 2026-07-28 (stateless, per-request `_meta`): `createMcpHandler`, a fresh `McpServer` per request,
 *   `subscriptions/listen` served by the handler's own listen router;
 * - 2025-11-25 (stateful): one `McpServer` per `Mcp-Session-Id` over the SDK's web-standard Streamable
 *   HTTP transport, with a small in-memory event store (resumability) and `retry:` hints.
 * The two are told apart by the SDK's own classifier (`isLegacyRequest`), so a request goes to the leg
 * `createMcpHandler` itself would give it.
 *
 * Listens on 127.0.0.1, port 0, and guards Host and Origin (localhost only) like the SDK's framework
 * factories do on a loopback bind: the `dns-rebinding-protection` scenario checks that.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { localhostHostValidation, localhostOriginValidation, toNodeHandler } from '@modelcontextprotocol/node';
import {
  acceptedContent,
  CLIENT_CAPABILITIES_META_KEY,
  completable,
  createMcpHandler,
  createRequestStateCodec,
  fromJsonSchema,
  inputRequired,
  isLegacyRequest,
  McpServer,
  ProtocolError,
  ProtocolErrorCode,
  ResourceTemplate,
  WebStandardStreamableHTTPServerTransport,
  type CallToolResult,
  type ElicitRequestFormParams,
  type EventStore,
  type GetPromptResult,
  type InputRequests,
  type InputRequiredResult,
  type JSONRPCMessage,
  type LoggingLevel,
  type ReadResourceResult,
  type ServerContext,
} from '@modelcontextprotocol/server';
import * as z from 'zod';

/** A 1×1 PNG and a tiny WAV, base64: the image and audio scenarios only check shape and mime type. */
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ConformanceServer {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  url: string;
  /** `http://127.0.0.1:<port>`, for an upstream `url` (the gateway appends the route's remainder). */
  origin: string;
  /** Everything reported through the handlers' `onerror` (diagnostics for a failing run). */
  errors: string[];
  close(): Promise<void>;
}

/** An elicitation form asking for one string (or boolean) field. */
function askFor(message: string, field: string, type: 'string' | 'boolean' = 'string') {
  const property = type === 'string' ? { type: 'string' as const } : { type: 'boolean' as const };
  return inputRequired.elicit({
    message,
    requestedSchema: { type: 'object', properties: { [field]: property }, required: [field] },
  });
}

export async function startConformanceServer(): Promise<ConformanceServer> {
  const errors: string[] = [];
  const onerror = (e: Error) => { errors.push(e.message); };

  // requestState leaves the server and comes back from the client: seal it (HMAC, per-process key) so a
  // tampered or foreign state is refused before any handler runs (input-required-result-tampered-state).
  const stateCodec = createRequestStateCodec<Record<string, unknown>>({ key: crypto.getRandomValues(new Uint8Array(32)) });

  // 2025-era subscriptions, per session (a stateless 2026 request has nothing to subscribe with).
  const subscriptions = new Map<string, Set<string>>();

  // The modern handler is referred to by the listen-trigger tools; it is built below from `build`.
  let modern: ReturnType<typeof createMcpHandler> | undefined;

  function build(): McpServer {
    const server = new McpServer(
      { name: 'gateway-conformance-server', version: '1.0.0' },
      {
        capabilities: {
          tools: { listChanged: true },
          resources: { subscribe: true, listChanged: true },
          prompts: { listChanged: true },
          // Deprecated in 2026-07-28 (log level travels per request) but what the 2025 leg negotiates.
          logging: {},
          completions: {},
        },
        requestState: { verify: stateCodec.verify },
        // One shared answer for every caller: list results may be cached by anyone.
        cacheHints: { 'tools/list': { ttlMs: 60_000, cacheScope: 'public' }, 'prompts/list': { ttlMs: 60_000, cacheScope: 'public' } },
      },
    );
    const text = (t: string): CallToolResult => ({ content: [{ type: 'text', text: t }] });
    const noArgs = z.object({});

    // ---- content tools (tools-call-*) ----
    server.registerTool('test_simple_text', { description: 'Answers one text block' }, async () =>
      text('This is a simple text response for testing.'));
    server.registerTool('test_image_content', { description: 'Answers one PNG image' }, async () =>
      ({ content: [{ type: 'image', data: PNG, mimeType: 'image/png' }] }));
    server.registerTool('test_audio_content', { description: 'Answers one WAV clip' }, async () =>
      ({ content: [{ type: 'audio', data: WAV, mimeType: 'audio/wav' }] }));
    server.registerTool('test_embedded_resource', { description: 'Answers an embedded text resource' }, async () => ({
      content: [{ type: 'resource', resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' } }],
    }));
    server.registerTool('test_multiple_content_types', { description: 'Answers text, image and resource together' }, async () => ({
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG, mimeType: 'image/png' },
        { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' } },
      ],
    }));
    server.registerTool('test_error_handling', { description: 'Always fails (isError result)' }, async () => {
      throw new Error('This tool intentionally returns an error for testing');
    });

    // ---- notifications during a call ----
    server.registerTool('test_tool_with_logging', { description: 'Logs three lines while running', inputSchema: noArgs },
      async (_args, ctx) => {
        for (const line of ['Tool execution started', 'Tool processing data', 'Tool execution completed']) {
          await ctx.mcpReq.notify({ method: 'notifications/message', params: { level: 'info', data: line } });
          await sleep(20);
        }
        return text('Tool with logging executed successfully');
      });
    server.registerTool('test_tool_with_progress', { description: 'Reports progress 0, 50, 100 when given a token', inputSchema: noArgs },
      async (_args, ctx) => {
        const progressToken = ctx.mcpReq._meta?.progressToken;
        if (progressToken !== undefined) {
          for (const progress of [0, 50, 100]) {
            await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress, total: 100, message: `step ${progress}` } });
            if (progress < 100) await sleep(20);
          }
        }
        return text(String(progressToken ?? 'no-progress-token'));
      });

    // ---- 2025-era server-to-client requests (sampling, elicitation) ----
    server.registerTool('test_sampling', { description: 'Asks the client\'s LLM', inputSchema: z.object({ prompt: z.string() }) },
      async ({ prompt }, ctx) => {
        const r = await ctx.mcpReq.send({ method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 100 } }) as { content?: { text?: string } };
        return text(`LLM response: ${r.content?.text ?? 'No response'}`);
      });
    const elicitTool = (name: string, description: string, message: string, properties: ElicitRequestFormParams['requestedSchema']['properties'], required: string[] = []) =>
      server.registerTool(name, { description, inputSchema: name === 'test_elicitation' ? z.object({ message: z.string() }) : noArgs },
        async (args, ctx) => {
          const r = await ctx.mcpReq.send({
            method: 'elicitation/create',
            params: { message: (args as { message?: string }).message ?? message, requestedSchema: { type: 'object', properties, required } },
          }) as { action?: string; content?: unknown };
          return text(`Elicitation completed: action=${r.action}, content=${JSON.stringify(r.content ?? {})}`);
        });
    elicitTool('test_elicitation', 'Asks the user one question', '', { response: { type: 'string', description: 'User\'s response' } }, ['response']);
    elicitTool('test_elicitation_sep1034_defaults', 'Elicitation with a default for every primitive type (SEP-1034)', 'Please review the defaults', {
      name: { type: 'string', description: 'User name', default: 'John Doe' },
      age: { type: 'integer', description: 'User age', default: 30 },
      score: { type: 'number', description: 'User score', default: 95.5 },
      status: { type: 'string', description: 'User status', enum: ['active', 'inactive', 'pending'], default: 'active' },
      verified: { type: 'boolean', description: 'Verification status', default: true },
    });
    elicitTool('test_elicitation_sep1330_enums', 'Elicitation with the five enum shapes (SEP-1330)', 'Please pick options', {
      untitledSingle: { type: 'string', description: 'Select one', enum: ['option1', 'option2', 'option3'] },
      titledSingle: { type: 'string', description: 'Select one (titled)', oneOf: [{ const: 'value1', title: 'First Option' }, { const: 'value2', title: 'Second Option' }, { const: 'value3', title: 'Third Option' }] },
      legacyEnum: { type: 'string', description: 'Select one (legacy)', enum: ['opt1', 'opt2', 'opt3'], enumNames: ['Option One', 'Option Two', 'Option Three'] },
      untitledMulti: { type: 'array', description: 'Select several', minItems: 1, maxItems: 3, items: { type: 'string', enum: ['option1', 'option2', 'option3'] } },
      titledMulti: { type: 'array', description: 'Select several (titled)', minItems: 1, maxItems: 3, items: { anyOf: [{ const: 'value1', title: 'First Choice' }, { const: 'value2', title: 'Second Choice' }, { const: 'value3', title: 'Third Choice' }] } },
    });

    // SEP-1699 polling: the stream is closed mid-call; the answer arrives on the client's reconnection.
    server.registerTool('test_reconnection', { description: 'Closes its SSE stream mid-call (SEP-1699)', inputSchema: noArgs },
      async (_args, ctx) => {
        const transport = ctx.sessionId ? sessions.get(ctx.sessionId) : undefined;
        if (transport && ctx.mcpReq.id !== undefined) transport.closeSSEStream(ctx.mcpReq.id);
        await sleep(100);
        return text('Reconnection test completed successfully.');
      });

    // ---- JSON Schema 2020-12 (SEP-1613/SEP-2106) and x-mcp-header (SEP-2243): schemas kept verbatim ----
    server.registerTool('json_schema_2020_12_tool', {
      description: 'Input schema using 2020-12 keywords',
      inputSchema: fromJsonSchema({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        type: 'object',
        $defs: { address: { $anchor: 'addressDef', type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } } } },
        properties: {
          name: { type: 'string' },
          address: { $ref: '#/$defs/address' },
          contactMethod: { type: 'string', enum: ['phone', 'email'] },
          phone: { type: 'string' },
          email: { type: 'string' },
        },
        allOf: [{ anyOf: [{ required: ['phone'] }, { required: ['email'] }] }],
        if: { properties: { contactMethod: { const: 'phone' } }, required: ['contactMethod'] },
        // eslint-disable-next-line unicorn/no-thenable -- a JSON Schema keyword
        then: { required: ['phone'] },
        else: { required: ['email'] },
        additionalProperties: false,
      }),
    }, async (args) => text(`called with ${JSON.stringify(args)}`));
    server.registerTool('test_x_mcp_header', {
      description: 'One argument mirrored into Mcp-Param-Region (SEP-2243)',
      // `x-mcp-header` is an extension keyword the JSON Schema type does not know.
      inputSchema: fromJsonSchema<{ region?: string; level?: number }>({
        type: 'object',
        properties: {
          region: { type: 'string', 'x-mcp-header': 'Region' } as { type: 'string' },
          level: { type: 'integer' },
        },
      }),
    }, async (args) => text(`region=${args.region ?? '<none>'}`));

    // ---- server-stateless (SEP-2575) fixtures ----
    server.registerTool('test_missing_capability', { description: 'Needs the sampling client capability', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        if (ctx.mcpReq.inputResponses?.['llm_answer'] !== undefined) return text('sampling round-trip complete');
        return inputRequired({ inputRequests: { llm_answer: inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'Say pong' } }], maxTokens: 16 }) } });
      });
    server.registerTool('test_streaming_elicitation', { description: 'A plain answer: no request on the response stream', inputSchema: noArgs },
      async () => text('result frames only'));
    server.registerTool('test_logging_tool', { description: 'Logs through the request-scoped, level-gated channel', inputSchema: noArgs },
      async (_args, ctx) => {
        await ctx.mcpReq.log('info', 'test_logging_tool ran');
        return text('logged (delivered only when the request set a log level)');
      });
    server.registerTool('test_trigger_tool_change', { description: 'Publishes tools/list_changed to listeners', inputSchema: noArgs },
      async () => { modern?.notify.toolsChanged(); return text('tools list_changed published'); });
    server.registerTool('test_trigger_prompt_change', { description: 'Publishes prompts/list_changed to listeners', inputSchema: noArgs },
      async () => { modern?.notify.promptsChanged(); return text('prompts list_changed published'); });

    // ---- multi round-trip requests (SEP-2322) ----
    server.registerTool('test_input_required_result_elicitation', { description: 'Asks for a name (elicitation)', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        const name = acceptedContent<{ name: string }>(ctx.mcpReq.inputResponses, 'user_name')?.name;
        if (typeof name === 'string') return text(`Hello, ${name}!`);
        return inputRequired({ inputRequests: { user_name: askFor('What is your name?', 'name') } });
      });
    server.registerTool('test_input_required_result_sampling', { description: 'Asks the client\'s LLM (sampling)', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        const answer = ctx.mcpReq.inputResponses?.['capital_question'] as { content?: { text?: unknown } } | undefined;
        if (answer !== undefined) return text(`Sampling response: ${typeof answer.content?.text === 'string' ? answer.content.text : JSON.stringify(answer)}`);
        return inputRequired({ inputRequests: { capital_question: inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'What is the capital of France?' } }], maxTokens: 100 }) } });
      });
    server.registerTool('test_input_required_result_list_roots', { description: 'Asks for the client\'s roots', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        const roots = (ctx.mcpReq.inputResponses?.['client_roots'] as { roots?: Array<{ uri?: string }> } | undefined)?.roots;
        if (Array.isArray(roots)) return text(`Client exposed ${roots.length} root(s): ${roots.map((r) => r.uri).join(', ')}`);
        return inputRequired({ inputRequests: { client_roots: inputRequired.listRoots() } });
      });
    server.registerTool('test_input_required_result_request_state', { description: 'Round-trips sealed requestState', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        if (acceptedContent<{ ok: boolean }>(ctx.mcpReq.inputResponses, 'confirm') === undefined) {
          return inputRequired({ inputRequests: { confirm: askFor('Please confirm', 'ok', 'boolean') }, requestState: await stateCodec.mint({ tool: 'request_state', nonce: randomUUID() }) });
        }
        if (ctx.mcpReq.requestState<Record<string, unknown>>()?.tool !== 'request_state') {
          throw new ProtocolError(ProtocolErrorCode.InvalidParams, 'Invalid requestState');
        }
        return text('state-ok: requestState verified and confirmation received');
      });
    server.registerTool('test_input_required_result_multiple_inputs', { description: 'Asks elicitation, sampling and roots at once', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        const r = ctx.mcpReq.inputResponses;
        const name = acceptedContent<{ name: string }>(r, 'user_name')?.name;
        const greeting = (r?.['greeting'] as { content?: { text?: unknown } } | undefined)?.content?.text;
        const roots = (r?.['client_roots'] as { roots?: unknown[] } | undefined)?.roots;
        if (typeof name === 'string' && typeof greeting === 'string' && Array.isArray(roots)) return text(`${greeting} ${name}: ${roots.length} root(s)`);
        return inputRequired({
          inputRequests: {
            user_name: askFor('What is your name?', 'name'),
            greeting: inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'Generate a greeting' } }], maxTokens: 50 }),
            client_roots: inputRequired.listRoots(),
          },
          requestState: await stateCodec.mint({ tool: 'multiple_inputs', nonce: randomUUID() }),
        });
      });
    server.registerTool('test_input_required_result_multi_round', { description: 'Two elicitation rounds, state carried in requestState', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        const state = ctx.mcpReq.requestState<Record<string, unknown>>();
        const round = state?.tool === 'multi_round' && typeof state.round === 'number' ? state.round : 0;
        if (round === 0) {
          return inputRequired({ inputRequests: { step1: askFor('Step 1: What is your name?', 'name') }, requestState: await stateCodec.mint({ tool: 'multi_round', round: 1, nonce: randomUUID() }) });
        }
        if (round === 1) {
          const name = acceptedContent<{ name: string }>(ctx.mcpReq.inputResponses, 'step1')?.name ?? 'unknown';
          return inputRequired({ inputRequests: { step2: askFor('Step 2: What is your favorite color?', 'color') }, requestState: await stateCodec.mint({ tool: 'multi_round', round: 2, name, nonce: randomUUID() }) });
        }
        const color = acceptedContent<{ color: string }>(ctx.mcpReq.inputResponses, 'step2')?.color ?? 'unknown';
        return text(`Multi-round complete: ${String(state?.name)} likes ${color}`);
      });
    server.registerTool('test_input_required_result_tampered_state', { description: 'Refuses a requestState that fails verification', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        // The codec's verify hook has already refused a tampered state (-32602) before this runs.
        if (ctx.mcpReq.requestState() !== undefined && acceptedContent(ctx.mcpReq.inputResponses, 'confirm') !== undefined) return text('integrity-ok');
        return inputRequired({ inputRequests: { confirm: askFor('Please confirm', 'ok', 'boolean') }, requestState: await stateCodec.mint({ tool: 'tampered_state', nonce: randomUUID() }) });
      });
    server.registerTool('test_input_required_result_capabilities', { description: 'Asks only for input kinds the client declared', inputSchema: noArgs },
      async (_args, ctx): Promise<CallToolResult | InputRequiredResult> => {
        if (ctx.mcpReq.inputResponses !== undefined) return text('Capability-aware input requests fulfilled');
        // The published type of the envelope is empty; read the one key through a narrow view.
        const envelope = ctx.mcpReq.envelope as Record<string, { elicitation?: unknown; sampling?: unknown; roots?: unknown } | undefined> | undefined;
        const declared = envelope?.[CLIENT_CAPABILITIES_META_KEY];
        const asks: InputRequests = {};
        if (declared?.elicitation !== undefined) asks.user_name = askFor('What is your name?', 'name');
        if (declared?.sampling !== undefined) asks.greeting = inputRequired.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: 'Greet me' } }], maxTokens: 50 });
        if (declared?.roots !== undefined) asks.client_roots = inputRequired.listRoots();
        if (Object.keys(asks).length === 0) return text('No declared client capability supports an input request');
        return inputRequired({ inputRequests: asks });
      });

    // ---- resources ----
    server.registerResource('static-text', 'test://static-text', { title: 'Static text', mimeType: 'text/plain' }, async (): Promise<ReadResourceResult> =>
      ({ contents: [{ uri: 'test://static-text', mimeType: 'text/plain', text: 'This is the content of the static text resource.' }] }));
    server.registerResource('static-binary', 'test://static-binary', { title: 'Static binary', mimeType: 'image/png' }, async (): Promise<ReadResourceResult> =>
      ({ contents: [{ uri: 'test://static-binary', mimeType: 'image/png', blob: PNG }] }));
    server.registerResource('watched-resource', 'test://watched-resource', { title: 'Watched', mimeType: 'text/plain' }, async (): Promise<ReadResourceResult> =>
      ({ contents: [{ uri: 'test://watched-resource', mimeType: 'text/plain', text: 'Watched resource content' }] }));
    server.registerResource('template', new ResourceTemplate('test://template/{id}/data', { list: undefined }), { title: 'Template', mimeType: 'application/json' },
      async (uri, { id }): Promise<ReadResourceResult> =>
        ({ contents: [{ uri: uri.toString(), mimeType: 'application/json', text: JSON.stringify({ id, templateTest: true, data: `Data for ID: ${id}` }) }] }));
    const subscriptionsOf = (ctx: ServerContext) => {
      const key = ctx.sessionId ?? '';
      let set = subscriptions.get(key);
      if (!set) subscriptions.set(key, set = new Set());
      return set;
    };
    server.server.setRequestHandler('resources/subscribe', async (req, ctx) => { subscriptionsOf(ctx).add(req.params.uri); return {}; });
    server.server.setRequestHandler('resources/unsubscribe', async (req, ctx) => { subscriptionsOf(ctx).delete(req.params.uri); return {}; });

    // ---- prompts ----
    server.registerPrompt('test_simple_prompt', { title: 'Simple', description: 'No arguments' }, async (): Promise<GetPromptResult> =>
      ({ messages: [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }] }));
    server.registerPrompt('test_prompt_with_arguments', {
      title: 'With arguments',
      description: 'Two required arguments (arg1 completes from a fixed list)',
      argsSchema: z.object({
        arg1: completable(z.string().describe('First test argument'), (value) => ['paris', 'park', 'party', 'test', 'testing'].filter((v) => v.startsWith(value))),
        arg2: z.string().describe('Second test argument'),
      }),
    }, async ({ arg1, arg2 }): Promise<GetPromptResult> =>
      ({ messages: [{ role: 'user', content: { type: 'text', text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'` } }] }));
    server.registerPrompt('test_prompt_with_embedded_resource', {
      title: 'Embedded resource', description: 'Embeds the resource it is given',
      argsSchema: z.object({ resourceUri: z.string().describe('URI of the resource to embed') }),
    }, async ({ resourceUri }): Promise<GetPromptResult> => ({
      messages: [
        { role: 'user', content: { type: 'resource', resource: { uri: resourceUri, mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
        { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } },
      ],
    }));
    server.registerPrompt('test_prompt_with_image', { title: 'Image', description: 'Carries an image' }, async (): Promise<GetPromptResult> => ({
      messages: [
        { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
        { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } },
      ],
    }));
    server.registerPrompt('test_input_required_result_prompt', { title: 'MRTR prompt', description: 'Asks for context before rendering (SEP-2322)' },
      async (ctx): Promise<GetPromptResult | InputRequiredResult> => {
        const context = acceptedContent<{ context: string }>((ctx as ServerContext).mcpReq.inputResponses, 'user_context')?.context;
        if (typeof context !== 'string') return inputRequired({ inputRequests: { user_context: askFor('What context should the prompt use?', 'context') } });
        return { messages: [{ role: 'user', content: { type: 'text', text: `Use the following context: ${context}` } }] };
      });

    // ---- 2025-era logging/setLevel ----
    server.server.setRequestHandler('logging/setLevel', async (req) => {
      const level: LoggingLevel = req.params.level;
      void server.server.notification({ method: 'notifications/message', params: { level: 'info', logger: 'conformance', data: `Log level set to: ${level}` } }).catch(() => {});
      return {};
    });
    return server;
  }

  // ---- 2026-07-28 leg ----
  modern = createMcpHandler(() => build(), { legacy: 'reject', onerror });

  // ---- 2025-11-25 leg: sessions ----
  const sessions = new Map<string, WebStandardStreamableHTTPServerTransport>();
  const events = new Map<string, { stream: string; message: JSONRPCMessage }>();
  let eventSeq = 0;
  const eventStore: EventStore = {
    async storeEvent(stream, message) {
      const id = `${stream}#${String(++eventSeq).padStart(10, '0')}`;
      events.set(id, { stream, message });
      return id;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const stream = events.get(lastEventId)?.stream ?? lastEventId.split('#')[0];
      for (const [id, e] of events) {
        if (e.stream === stream && id > lastEventId) await send(id, e.message);
      }
      return stream;
    },
  };
  const rpcError = (status: number, code: number, message: string) =>
    Response.json({ jsonrpc: '2.0', error: { code, message }, id: null }, { status });

  async function legacy(request: Request, body: unknown): Promise<Response> {
    const sid = request.headers.get('mcp-session-id');
    if (sid) {
      const t = sessions.get(sid);
      if (!t) return rpcError(404, -32001, 'Session not found');
      return t.handleRequest(request, body === undefined ? undefined : { parsedBody: body });
    }
    if (request.method !== 'POST') return rpcError(400, -32000, 'Bad Request: Mcp-Session-Id required');
    const isInit = !Array.isArray(body) && (body as { method?: unknown } | undefined)?.method === 'initialize';
    if (!isInit) return rpcError(400, -32000, 'Bad Request: no session; initialize first');
    const server = build();
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore,
      retryInterval: 500,
      onsessioninitialized: (id) => { sessions.set(id, transport); },
      onsessionclosed: (id) => { sessions.delete(id); subscriptions.delete(id); },
    });
    // Set before connect: the server chains its own close handling after this one.
    transport.onclose = () => { if (transport.sessionId) sessions.delete(transport.sessionId); };
    await server.connect(transport);
    return transport.handleRequest(request, { parsedBody: body });
  }

  const endpoint = {
    async fetch(request: Request): Promise<Response> {
      if (new URL(request.url).pathname !== '/mcp') return new Response('not found', { status: 404 });
      let body: unknown;
      if (request.method === 'POST') {
        const raw = await request.text();
        try { body = raw ? JSON.parse(raw) : undefined; } catch { return rpcError(400, -32700, 'Parse error'); }
        // Re-create the request: its body has been read.
        request = new Request(request.url, { method: 'POST', headers: request.headers, body: raw, signal: request.signal });
      }
      if (await isLegacyRequest(request, body ?? null)) return legacy(request, body);
      return modern!.fetch(request);
    },
  };
  const nodeHandler = toNodeHandler(endpoint, { onerror });
  const hostOk = localhostHostValidation();
  const originOk = localhostOriginValidation();
  const http: HttpServer = createServer((req, res) => {
    if (!hostOk(req, res) || !originOk(req, res)) return;
    void nodeHandler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/mcp`,
    origin,
    errors,
    async close() {
      await modern!.close();
      await Promise.all([...sessions.values()].map((t) => t.close().catch(() => {})));
      sessions.clear();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

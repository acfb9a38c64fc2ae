/**
 * A small MCP server on stdio for the stdio upstream tests that need precise control (the real servers cannot
 * be made to broadcast, hang or ignore SIGTERM on demand). Newline-delimited JSON-RPC, no SDK.
 *
 * Tools (`tools/call` name → behaviour):
 *   echo {text}            → text
 *   sdk_echo {text, cr}    → text, written as the MCP SDK lays answers out (`{"result":…,"jsonrpc":"2.0","id":…}`);
 *                            with `cr`, a CR (JSON whitespace) before `"jsonrpc"`
 *   sleep {ms}             → "slept" after ms
 *   stats                  → JSON {initializes, initialized, pid, cancelled}
 *   list_changed           → emits notifications/tools/list_changed, then "ok"
 *   log {text}             → emits notifications/message with text, then "ok"
 *   progress {steps}       → emits `steps` progress notifications with the request's token, then "done"
 *   ask {text}             → sends sampling/createMessage, answers with the client's reply text
 *   update {uri}           → emits notifications/resources/updated for uri, then "ok"
 *   hang                   → never answers (only a timeout or a cancellation ends it)
 *   env                    → JSON of its environment
 *   garbage {lines}        → writes `lines` non-JSON lines on stdout, then "ok"
 *   flood {count, size}    → `count` log notifications ({seq, fill} with `size` bytes of fill), waiting
 *                            for stdout to drain like a well-behaved server, then "flooded"
 *   deaf                   → stops reading stdin for good, then "deaf"
 * Environment:
 *   IGNORE_SIGTERM=1       ignore SIGTERM and stdin EOF (to test the SIGKILL after grace)
 *   INIT_DELAY_MS=<n>      answer `initialize` only after n ms; `never` never answers it
 * Every cancellation received is written to stderr as `cancelled <requestId> <reason>`.
 */
type Msg = { jsonrpc: '2.0'; id?: number | string; method?: string; params?: any; result?: any; error?: any };

if (process.env.IGNORE_SIGTERM === '1') {
  process.on('SIGTERM', () => {});
  // Stays alive after stdin closes too, so only SIGKILL ends it.
  setInterval(() => {}, 1 << 30);
}

let initializes = 0;
let initialized = 0;
const cancelled: Array<number | string> = [];
let nextServerId = 1000;
const waitingForClient = new Map<number, (m: Msg) => void>();

function send(m: Msg): void {
  process.stdout.write(`${JSON.stringify(m)}\n`);
}
const text = (t: string) => ({ content: [{ type: 'text', text: t }] });

async function call(id: number | string, name: string, args: any, meta: any): Promise<void> {
  switch (name) {
    case 'echo':
      return send({ jsonrpc: '2.0', id, result: text(String(args.text)) });
    case 'sdk_echo': {
      const line = JSON.stringify({ result: text(String(args.text)), jsonrpc: '2.0', id });
      return void process.stdout.write(`${args.cr ? line.replace(',"jsonrpc"', ',\r"jsonrpc"') : line}\n`);
    }
    case 'sleep':
      await new Promise((r) => setTimeout(r, Number(args.ms)));
      return send({ jsonrpc: '2.0', id, result: text('slept') });
    case 'stats':
      return send({ jsonrpc: '2.0', id, result: text(JSON.stringify({ initializes, initialized, pid: process.pid, cancelled })) });
    case 'list_changed':
      send({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
      return send({ jsonrpc: '2.0', id, result: text('ok') });
    case 'log':
      send({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: String(args.text) } });
      return send({ jsonrpc: '2.0', id, result: text('ok') });
    case 'progress': {
      const token = meta?.progressToken;
      for (let i = 1; i <= Number(args.steps); i++) {
        if (token !== undefined) send({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: token, progress: i, total: Number(args.steps) } });
        await new Promise((r) => setTimeout(r, 5));
      }
      return send({ jsonrpc: '2.0', id, result: text(`done token=${JSON.stringify(token)}`) });
    }
    case 'ask': {
      const askId = nextServerId++;
      const reply = new Promise<Msg>((resolve) => waitingForClient.set(askId, resolve));
      send({
        jsonrpc: '2.0',
        id: askId,
        method: 'sampling/createMessage',
        params: { messages: [{ role: 'user', content: { type: 'text', text: String(args.text) } }], maxTokens: 10 },
      });
      const answer = await reply;
      if (answer.error) return send({ jsonrpc: '2.0', id, result: { ...text(`error: ${answer.error.message}`), isError: true } });
      return send({ jsonrpc: '2.0', id, result: text(`client said: ${answer.result?.content?.text}`) });
    }
    case 'update':
      send({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: String(args.uri) } });
      return send({ jsonrpc: '2.0', id, result: text('ok') });
    case 'hang':
      return;
    case 'env':
      return send({ jsonrpc: '2.0', id, result: text(JSON.stringify(process.env)) });
    case 'flood': {
      const fill = 'x'.repeat(Number(args.size));
      for (let seq = 0; seq < Number(args.count); seq++) {
        const line = `${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: { seq, fill } } })}\n`;
        if (!process.stdout.write(line)) await new Promise((r) => process.stdout.once('drain', r));
      }
      return send({ jsonrpc: '2.0', id, result: text('flooded') });
    }
    case 'deaf':
      process.stdin.pause();
      setInterval(() => {}, 1 << 30); // a paused stdin no longer keeps the process alive
      return send({ jsonrpc: '2.0', id, result: text('deaf') });
    case 'garbage':
      process.stdout.write(`not json, line of garbage\n`.repeat(Number(args.lines)));
      return send({ jsonrpc: '2.0', id, result: text('ok') });
    default:
      return send({ jsonrpc: '2.0', id, error: { code: -32602, message: `unknown tool ${name}` } });
  }
}

function handle(m: Msg): void {
  if (m.method === undefined) {
    // A response to one of our requests.
    const waiter = typeof m.id === 'number' ? waitingForClient.get(m.id) : undefined;
    if (waiter) {
      waitingForClient.delete(m.id as number);
      waiter(m);
    }
    return;
  }
  if (m.id === undefined) {
    if (m.method === 'notifications/initialized') initialized++;
    if (m.method === 'notifications/cancelled') {
      cancelled.push(m.params?.requestId);
      process.stderr.write(`cancelled ${m.params?.requestId} ${m.params?.reason}\n`);
    }
    return;
  }
  const id = m.id;
  switch (m.method) {
    case 'initialize': {
      initializes++;
      const delay = process.env.INIT_DELAY_MS;
      if (delay === 'never') return;
      const answer = () => send({
        jsonrpc: '2.0',
        id,
        result: {
          protocolVersion: m.params?.protocolVersion ?? '2025-06-18',
          capabilities: { tools: { listChanged: true }, resources: { subscribe: true }, logging: {} },
          serverInfo: { name: 'fake-stdio-server', version: '1.0.0' },
        },
      });
      if (delay) setTimeout(answer, Number(delay));
      else answer();
      return;
    }
    case 'ping':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
    case 'logging/setLevel':
      return send({ jsonrpc: '2.0', id, result: {} });
    case 'tools/list':
      return send({
        jsonrpc: '2.0',
        id,
        result: { tools: ['echo', 'sleep', 'stats', 'list_changed', 'log', 'progress', 'ask', 'update', 'hang', 'env', 'garbage', 'flood', 'deaf'].map((name) => ({ name, inputSchema: { type: 'object' } })) },
      });
    case 'tools/call':
      void call(id, m.params?.name, m.params?.arguments ?? {}, m.params?._meta);
      return;
    default:
      return send({ jsonrpc: '2.0', id, error: { code: -32601, message: `method not found: ${m.method}` } });
  }
}

let buffer = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  buffer += chunk;
  for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    if (line.trim()) handle(JSON.parse(line));
  }
});
process.stderr.write(`fake-stdio-server ready pid=${process.pid}\n`);

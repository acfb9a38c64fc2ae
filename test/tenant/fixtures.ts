/**
 * Builds plugins and exchanges for unit tests of the tenant plugins, without a running gateway.
 */
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import {
  PRINCIPAL,
  type JSONRPCMessage, type MessageContext, type MessageVerdict, type Outcome, type Plugin, type PluginDefinition,
  type PluginDeps, type Principal, type RouteInfo,
} from '../../gateway/contract.ts';
import { GatewayExchange } from '../../gateway/exchange.ts';

export const silentLog = pino({ level: 'silent' });

export const route: RouteInfo = {
  name: 'tenant-test',
  path: '/mcp',
  upstream: 'graph',
  listener: { name: 'main', host: '127.0.0.1', port: 0, publicUrl: 'http://127.0.0.1:0' },
};

export function deps(opts: { redis?: Redis; redisKeyPrefix?: string; log?: typeof silentLog } = {}): PluginDeps {
  return {
    log: opts.log ?? silentLog,
    route,
    configDir: process.cwd(),
    shared: { redis: opts.redis, redisKeyPrefix: opts.redisKeyPrefix ?? 'mcpgw-test:' },
  };
}

/** Validates `config` with the plugin's own schema (as the loader does) and builds the plugin. */
export async function build<S extends PluginDefinition>(def: S, config: unknown, d: PluginDeps = deps()): Promise<Plugin> {
  return def.create(def.config.parse(config), d);
}

export function principal(tenant: string, extra: Partial<Principal> = {}): Principal {
  return { issuer: 'https://issuer.test', tenant, subject: `user-of-${tenant}`, scopes: [], claims: {}, ...extra };
}

let seq = 0;

export function exchange(opts: {
  method?: string;
  headers?: Record<string, string>;
  principal?: Principal;
  remoteAddress?: string;
} = {}): GatewayExchange {
  const socket = new Socket();
  if (opts.remoteAddress) Object.defineProperty(socket, 'remoteAddress', { value: opts.remoteAddress });
  const req = new IncomingMessage(socket);
  req.method = opts.method ?? 'POST';
  req.url = '/mcp';
  req.headers = { accept: 'application/json, text/event-stream', 'content-type': 'application/json', ...opts.headers };
  const x = new GatewayExchange({ id: `x${++seq}`, route, req, url: new URL('http://127.0.0.1/mcp'), log: silentLog });
  if (opts.principal) x.set(PRINCIPAL, opts.principal);
  return x;
}

export const json: MessageContext = { direction: 'request', framing: 'json' };
export const batch: MessageContext = { direction: 'request', framing: 'batch' };

export function response(request: JSONRPCMessage, framing: MessageContext['framing'] = 'json'): MessageContext {
  return { direction: 'response', framing, request: request as MessageContext['request'] };
}

let nextId = 1;

export function call(tool: string, args: Record<string, unknown> = {}): JSONRPCMessage {
  return { jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name: tool, arguments: args } } as JSONRPCMessage;
}

export function rpc(method: string, params?: Record<string, unknown>): JSONRPCMessage {
  return { jsonrpc: '2.0', id: nextId++, method, ...(params ? { params } : {}) } as JSONRPCMessage;
}

export function result(request: JSONRPCMessage, value: unknown): JSONRPCMessage {
  return { jsonrpc: '2.0', id: (request as { id: number }).id, result: value } as JSONRPCMessage;
}

/** The message a verdict leaves: the replacement, the original for pass/undefined, undefined for drop. */
export function after(original: JSONRPCMessage, v: MessageVerdict | void): JSONRPCMessage | undefined {
  if (!v || v.kind === 'pass') return original;
  if (v.kind === 'replace') return v.message;
  return undefined;
}

/** An Outcome for onDone. */
export function outcome(status = 200): Outcome {
  return { status, bytesIn: 0, bytesOut: 0, durationMs: 0, messageRefusals: [] };
}

/** Looks into a message as `T` (tests know what shape they built or expect). */
export function shape<T>(m: JSONRPCMessage | undefined): T {
  return m as unknown as T;
}

/** Runs a message hook whether it is sync or async. */
export async function onRequestMessage(p: Plugin, msg: JSONRPCMessage, x: GatewayExchange, ctx: MessageContext = json) {
  return p.onRequestMessage!(msg, x, ctx);
}

/** Answers when Redis on 127.0.0.1:6379 is reachable; tests skip with a reason otherwise. */
export async function redisAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  const { Redis } = await import('ioredis');
  const probe = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    await probe.ping();
    return { ok: true };
  } catch (err) {
    if (process.env.REQUIRE_REDIS === '1') throw err;
    return { ok: false, reason: `no Redis on 127.0.0.1:6379 (${(err as Error).message})` };
  } finally {
    probe.disconnect();
  }
}

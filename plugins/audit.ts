/**
 * audit: one structured line per HTTP exchange and, optionally, one per JSON-RPC message, written by
 * pino asynchronously (the proxied exchange never waits for the disk).
 *
 * Put it FIRST in a route: request hooks run in route order, so an audit placed first sees every
 * message, including those a later plugin refuses; the refusal itself is in the exchange line.
 * Secrets never reach the file: the token plugin removes URL tokens before anything sees the URL, the
 * exchange line carries the path without its query, and the logger redacts credential fields.
 */
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { duration } from '../config/units.ts';
import { definePlugin, PRINCIPAL, PROTOCOL, type Exchange, type JSONRPCMessage, type MessageContext, type Plugin } from '../gateway/contract.ts';
import { idOf, toolNameOf } from '../gateway/jsonrpc.ts';

const AuditConfig = z.strictObject({
  /**
   * Where lines go: `stdout`, `stderr`, `log` (the gateway's own log stream), or a file path (relative to
   * the config file's folder; folders are created). Default `stdout`.
   */
  destination: z.string().min(1).default('stdout'),
  /** Also write a line per JSON-RPC message (this makes the route parse bodies). Default true. */
  messages: z.boolean().default(true),
  /** Longest time a line waits in the write buffer (lines are written in batches). Default 1s. */
  flushInterval: duration().pipe(z.number().min(10)).default(1000),
});

/**
 * The audit line's fields are chosen here, so the redaction only has to guard the few places a
 * credential could ever land. Exact paths on purpose: pino's wildcard paths (`*.token`) cost ~13 µs per
 * line on this hardware, more than writing the line itself.
 */
const AUDIT_REDACT = ['authorization', 'cookie', 'token', 'headers.authorization', 'headers.cookie', 'headers["x-api-key"]'];

/**
 * Lines are batched: a write system call per line costs more than the line itself, so lines
 * collect before a write (8 KB), and a timer flushes whatever waits at least every `flushInterval`.
 */
let lastMs = 0;
let lastTime = '';
/** pino's ISO timestamp, formatted once per millisecond: several lines share each millisecond. */
function isoTimeCachedPerMs(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

function openDestination(dest: string, configDir: string, flushInterval: number, log: Logger): { logger: Logger; close(): void } {
  const options = { base: { audit: true }, redact: { paths: AUDIT_REDACT, censor: '[redacted]' }, timestamp: isoTimeCachedPerMs };
  if (dest === 'log') return { logger: log.child({ audit: true }), close: () => undefined };
  const common = { sync: false, minLength: 8 * 1024 };
  const stream = dest === 'stdout' ? pino.destination({ fd: 1, ...common })
    : dest === 'stderr' ? pino.destination({ fd: 2, ...common })
    : pino.destination({ dest: path.resolve(configDir, dest), mkdir: true, ...common });
  const flush = () => {
    try {
      stream.flush();
    } catch {
      // Not open yet, or already closed: the next tick or close() writes what waits.
    }
  };
  const timer = setInterval(flush, flushInterval);
  timer.unref();
  return {
    logger: pino(options, stream),
    close: () => {
      clearInterval(timer);
      try {
        stream.flushSync();
      } catch {
        flush();
      }
    },
  };
}

/** The protocol version and the client's self-description (client-chosen text: strings only, bounded). */
function protocolOf(x: Exchange): Record<string, unknown> {
  const p = x.get(PROTOCOL);
  if (!p) return {};
  const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 128) : undefined);
  const client = p.clientInfo ? { name: text(p.clientInfo.name), version: text(p.clientInfo.version) } : undefined;
  return { protocolVersion: p.version, era: p.era, client };
}

function who(x: Exchange): Record<string, unknown> {
  const p = x.get(PRINCIPAL);
  return p ? { tenant: p.tenant, sub: p.subject, iss: p.issuer, jti: p.tokenId } : {};
}

export default definePlugin({
  type: 'audit',
  config: AuditConfig,
  create(config, deps): Plugin {
    const { logger, close } = openDestination(config.destination, deps.configDir, config.flushInterval, deps.log);
    const messageLine = (msg: JSONRPCMessage, x: Exchange, ctx: MessageContext) => {
      const m = msg as { method?: string; error?: { code?: number; data?: { code?: string } } };
      logger.info({
        kind: 'message',
        exchange: x.id,
        route: x.route.name,
        direction: ctx.direction,
        rpcMethod: m.method ?? ctx.request?.method,
        rpcId: idOf(msg),
        tool: toolNameOf(msg) ?? (ctx.request ? toolNameOf(ctx.request) : undefined),
        error: m.error ? { code: m.error.code, gatewayCode: m.error.data?.code } : undefined,
        session: x.sessionId,
        ...who(x),
      });
    };
    const plugin: Plugin = {
      name: 'audit',
      onDone(x, o) {
        logger.info({
          kind: 'exchange',
          exchange: x.id,
          route: x.route.name,
          listener: x.route.listener.name,
          method: x.method,
          path: x.url.pathname,
          transport: x.transport,
          session: x.sessionId,
          ...protocolOf(x),
          ...who(x),
          status: o.status,
          latencyMs: Math.round(o.durationMs * 100) / 100,
          upstreamMs: o.upstreamMs === undefined ? undefined : Math.round(o.upstreamMs * 100) / 100,
          bytesIn: o.bytesIn,
          bytesOut: o.bytesOut,
          refusal: o.refusal?.code,
          refusedBy: o.refusal?.plugin,
          messageRefusals: o.messageRefusals.length > 0 ? o.messageRefusals : undefined,
          error: o.error?.message,
        });
      },
      close,
    };
    if (config.messages) {
      plugin.onRequestMessage = (msg, x, ctx) => void messageLine(msg, x, ctx);
      plugin.onResponseMessage = (msg, x, ctx) => void messageLine(msg, x, ctx);
    }
    return plugin;
  },
});

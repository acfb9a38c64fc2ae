/**
 * audit: one structured line per HTTP exchange and, optionally, one per JSON-RPC message, written by
 * pino asynchronously (the proxied exchange never waits for the disk).
 *
 * Put it FIRST in a route: request hooks run in route order, so an audit placed first sees every
 * message, including those a later plugin refuses; the refusal itself is in the exchange line.
 * Secrets never reach the file: the token plugin removes URL tokens before anything sees the URL, the
 * exchange line carries the path without its query, and the logger redacts credential fields.
 */
import { isIP } from 'node:net';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { duration } from '../config/units.ts';
import { definePlugin, PRINCIPAL, PROTOCOL, type Exchange, type JSONRPCMessage, type MessageContext, type Plugin } from '../gateway/contract.ts';
import { idOf } from '../gateway/jsonrpc.ts';
import { answerOutcome, callFields, clientFields, noteAnswer, noteRequest, targetOf, text, trustList, type Answer } from './audit-calls.ts';
import { acquireWriter, type AuditWriter } from './audit-files.ts';

const AuditConfig = z.strictObject({
  /**
   * Where lines go: `stdout`, `stderr`, `log` (the gateway's own log stream), or a file path (relative to
   * the config file's folder; folders are created). Default `stdout`.
   */
  destination: z.string().min(1).default('stdout'),
  /**
   * Also write a line per JSON-RPC message, and put each call's tool and outcome on the exchange line.
   * Both need the messages, so this makes the route parse bodies; `false` keeps an otherwise
   * plugin-free route streaming bytes, with exchange lines only. Default true.
   */
  messages: z.boolean().default(true),
  /**
   * Proxies (addresses or CIDRs) whose `X-Forwarded-For` is believed: when the peer is one of them, the
   * exchange line's `forwardedFor` is the client address they forwarded. Default none: the header is
   * not read, since any client can write it.
   */
  trustedProxies: z.array(z.string().refine(validCidr, 'an IPv4 or IPv6 address, optionally with /bits')).default([]),
  /** Longest time a line waits in the write buffer (lines are written in batches). Default 1s. */
  flushInterval: duration().pipe(z.number().min(10)).default(1000),
});

function validCidr(entry: string): boolean {
  const [addr, bits, extra] = entry.split('/');
  const family = isIP(addr);
  if (family === 0 || extra !== undefined) return false;
  return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}

/**
 * The audit line's fields are chosen here, so the redaction only has to guard the few places a
 * credential could ever land. Exact paths on purpose: pino's wildcard paths (`*.token`) cost ~13 µs per
 * line on this hardware, more than writing the line itself.
 */
const AUDIT_REDACT = ['authorization', 'cookie', 'token', 'headers.authorization', 'headers.cookie', 'headers["x-api-key"]'];

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

/** A logger on the destination, and how to let it go. */
function openDestination(config: z.output<typeof AuditConfig>, configDir: string, log: Logger): { logger: Logger; writer?: AuditWriter; close(): Promise<void> } {
  if (config.destination === 'log') return { logger: log.child({ audit: true }), close: async () => undefined };
  const writer = acquireWriter(config.destination, configDir, log);
  // A timer flushes whatever waits at least every `flushInterval` (lines are written in 8 KB batches).
  const timer = setInterval(writer.flush, config.flushInterval);
  timer.unref();
  const options = { base: { audit: true }, redact: { paths: AUDIT_REDACT, censor: '[redacted]' }, timestamp: isoTimeCachedPerMs };
  return {
    logger: pino(options, writer.stream),
    writer,
    close: () => {
      clearInterval(timer);
      return writer.release();
    },
  };
}

/** The protocol version and the client's self-description (client-chosen text: strings only, bounded). */
function protocolOf(x: Exchange): Record<string, unknown> {
  const p = x.get(PROTOCOL);
  if (!p) return {};
  const client = p.clientInfo ? { name: text(p.clientInfo.name, 128), version: text(p.clientInfo.version, 128) } : undefined;
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
    const { logger, writer, close } = openDestination(config, deps.configDir, deps.log);
    const proxies = trustList(config.trustedProxies);
    // `answer`: how an answer ended, either way (the upstream's to the client, the client's to a server
    // request); undefined for requests and notifications.
    const messageLine = (msg: JSONRPCMessage, x: Exchange, ctx: MessageContext, answer: Answer | undefined) => {
      const m = msg as { method?: string };
      logger.info({
        kind: 'message',
        exchange: x.id,
        route: x.route.name,
        direction: ctx.direction,
        rpcMethod: m.method ?? ctx.request?.method,
        rpcId: idOf(msg),
        // A response names what its request named: the line alone says which tool failed.
        ...targetOf(ctx.request ?? msg),
        outcome: answer?.outcome,
        error: answer?.rpcError,
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
          ...clientFields(x, proxies),
          ...protocolOf(x),
          ...who(x),
          ...callFields(x, o),
          status: o.status,
          latencyMs: Math.round(o.durationMs * 100) / 100,
          upstreamMs: o.upstreamMs === undefined ? undefined : Math.round(o.upstreamMs * 100) / 100,
          bytesIn: o.bytesIn,
          bytesOut: o.bytesOut,
          refusal: o.refusal?.code,
          refusedBy: o.refusal?.plugin,
          refusalMessage: o.refusal?.message,
          messageRefusals: o.messageRefusals.length > 0 ? o.messageRefusals : undefined,
          error: o.error?.message,
        });
      },
      close,
      reopen: writer ? () => writer.reopen() : undefined,
    };
    if (config.messages) {
      plugin.onRequestMessage = (msg, x, ctx) => {
        noteRequest(x, msg);
        messageLine(msg, x, ctx, answerOutcome(msg));
      };
      plugin.onResponseMessage = (msg, x, ctx) => messageLine(msg, x, ctx, noteAnswer(x, msg));
    }
    return plugin;
  },
});

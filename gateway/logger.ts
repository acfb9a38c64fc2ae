/**
 * The gateway's logger. Secrets are redacted here, in the logger's configuration, not at call sites:
 * whatever a plugin or the core logs, a credential never reaches the output.
 */
import type { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

/** Paths pino removes from every log line (censored as "[redacted]"). */
export const REDACTED_PATHS = [
  'authorization', 'cookie', 'token', 'password', 'secret', 'apiKey',
  '*.authorization', '*.Authorization', '*.cookie', '*.token', '*.password', '*.secret', '*.apiKey',
  'headers.authorization', 'headers.cookie', 'req.headers.authorization', 'req.headers.cookie',
  '*.headers.authorization', '*.headers.cookie', '*.headers["x-api-key"]', 'headers["x-api-key"]',
];

export interface LoggerOptions {
  level: string;
  /** Human-readable output (pino-pretty); default when stdout is a terminal. */
  pretty?: boolean;
  destination?: Writable;
}

export function createLogger(opts: LoggerOptions): Logger {
  const base = {
    level: opts.level,
    base: { service: 'mcp-gateway' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.destination) return pino(base, opts.destination);
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service,pid,hostname' } } });
  }
  return pino(base, pino.destination({ fd: 1, sync: false }));
}

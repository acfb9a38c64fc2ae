/**
 * Stable error codes of stdio upstreams, with their HTTP status (when the refusal is the whole HTTP
 * response) and JSON-RPC code (always; the gateway code travels in `error.data.code`).
 *
 * Errors about one JSON-RPC request (limit reached, process crashed, timed out) are answered as a
 * JSON-RPC error with that request's id, inside a normal 200 exchange, because that is where an MCP
 * client looks for them: the SDK client rejects exactly the call that failed, with the message and data.
 */
import type { Refusal } from '../errors.ts';

export const STDIO_ERRORS = {
  /** The principal's tenant is not in the tenant alphabet `^[a-z0-9-]*$`. */
  GW_ERR_INVALID_TENANT: { status: 400, rpc: -32000 },
  /** A `{sub}`/`{session}` value that cannot be used in a path (`.` or `..`). */
  GW_ERR_UNSAFE_TEMPLATE_VALUE: { status: 400, rpc: -32000 },
  /** A session is used by another tenant or subject than the one that opened it. */
  GW_ERR_SESSION_PRINCIPAL_MISMATCH: { status: 403, rpc: -32000 },
  /** `maxProcesses` or `maxProcessesPerTenant` reached: no process for a new pool key. */
  GW_ERR_PROCESS_LIMIT: { status: 503, rpc: -32000 },
  /** The command could not be started (not found, not executable, cwd missing …). */
  GW_ERR_UPSTREAM_SPAWN_FAILED: { status: 502, rpc: -32603 },
  /** The process exited while this request was in flight. It is restarted on next use. */
  GW_ERR_UPSTREAM_CRASHED: { status: 502, rpc: -32603 },
  /** The process answered the gateway's own request (its `initialize`) with a JSON-RPC error. */
  GW_ERR_UPSTREAM_REFUSED: { status: 502, rpc: -32603 },
  /** The process is not reading its stdin: too many bytes of earlier requests wait for it. */
  GW_ERR_UPSTREAM_BUSY: { status: 503, rpc: -32000 },
  /** The process did not answer within `requestTimeout`, or did not start within `startTimeout`. */
  GW_ERR_UPSTREAM_TIMEOUT: { status: 504, rpc: -32001 },
  /** The upstream is shutting down (gateway stop, or a reload that removed or changed it). */
  GW_ERR_SHUTTING_DOWN: { status: 503, rpc: -32000 },
  /** A POST whose Accept lacks `application/json` or `text/event-stream`, a GET's lacking the latter. */
  GW_ERR_NOT_ACCEPTABLE: { status: 406, rpc: -32000 },
  /** A POST body that is not `application/json`. */
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, rpc: -32000 },
  /** A second standalone GET stream on one session. */
  GW_ERR_STREAM_CONFLICT: { status: 409, rpc: -32000 },
  /** A method the MCP transports do not use (PUT, PATCH …), or DELETE/GET on a legacy session. */
  GW_ERR_METHOD_NOT_ALLOWED: { status: 405, rpc: -32000 },
} as const satisfies Record<string, { status: number; rpc: number }>;

export type StdioErrorCode = keyof typeof STDIO_ERRORS;

export function stdioRefusal(code: StdioErrorCode, message: string): Refusal {
  const e = STDIO_ERRORS[code];
  return { status: e.status, rpcCode: e.rpc, code, message };
}

/** An error carrying a stable code, thrown inside the stdio upstream and turned into a JSON-RPC error. */
export class StdioUpstreamError extends Error {
  readonly code: StdioErrorCode;
  constructor(code: StdioErrorCode, message: string) {
    super(message);
    this.name = 'StdioUpstreamError';
    this.code = code;
  }
}

/** A configuration problem found when the stdio upstream is built; `path` names the offending field. */
export class StdioConfigError extends Error {
  readonly code = 'GW_ERR_CONFIG';
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'StdioConfigError';
    this.path = path;
  }
}

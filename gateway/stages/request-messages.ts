/**
 * Stage 4: the messages of a POST body. Decoded (json-codec), inspected (the one loop), re-encoded
 * only when something changed; refused messages are answered by the gateway and never forwarded.
 *
 * Bodies are decoded only when some plugin reads messages: request hooks need them, and response hooks
 * need to know which request each answer belongs to. Otherwise the bytes go upstream as received.
 */
import { coreRefusal, sendRefusal, type Refusal } from '../errors.ts';
import { PROTOCOL, type JSONRPCRequest } from '../contract.ts';
import { protocolFromMessage } from '../era/detect.ts';
import { headerMismatch, recomputeHeaders } from '../era/header-check.ts';
import type { HeaderDeclaration } from '../era/mirror-headers.ts';
import { idOf, isRequest } from '../jsonrpc.ts';
import { ExchangeCorrelation } from '../messages/correlation.ts';
import type { Inspected } from '../messages/inspect.ts';
import { inspect } from '../messages/inspect.ts';
import { decodeJson, encodeJson } from '../messages/json-codec.ts';
import type { ExchangeRun } from '../proxy.ts';

/** Returns true when the exchange was fully answered by the gateway. */
export async function inspectRequestBody(run: ExchangeRun): Promise<boolean> {
  const { pipeline } = run;
  if (!pipeline.inspectsRequests && !pipeline.inspectsResponses) return false;
  const decoded = decodeJson(run.body!);
  if (!decoded.ok) {
    // Never forward what the plugins could not inspect: a malformed body would bypass them (and one
    // malformed POST kills @falkordb/mcpserver).
    run.refuse(decoded.reason === 'shape'
      ? coreRefusal('GW_ERR_INVALID_REQUEST', `Invalid Request: ${decoded.detail}`)
      : coreRefusal('GW_ERR_PARSE', `Parse error: the body is not valid JSON (${decoded.detail})`));
    return true;
  }
  const lone = decoded.batch ? undefined : decoded.values[0];
  if (lone !== undefined) {
    run.requestId = idOf(lone);
    const protocol = protocolFromMessage(run.x.get(PROTOCOL) ?? {}, lone);
    if (protocol.era) run.x.set(PROTOCOL, protocol);
  }
  // 2026 mirror headers are checked before any plugin reads the body.
  const modern = lone !== undefined && isRequest(lone) && run.x.get(PROTOCOL)?.era === '2026' ? lone : undefined;
  const declarations = modern ? declarationsFor(run, modern) : undefined;
  if (modern) {
    const problem = headerMismatch(run.req.headers, modern, declarations);
    if (problem) {
      run.refuse(coreRefusal('GW_ERR_HEADER_MISMATCH', `Header mismatch: ${problem}`));
      return true;
    }
  }
  if (pipeline.inspectsResponses) run.correlator = correlatorFor(run);

  const inspected = await inspect(decoded.values, 'request', decoded.batch ? 'batch' : 'json', run.inspectScope('request'));
  if (inspected.out.length === 0) {
    answerLocally(run, inspected, decoded.batch);
    return true;
  }
  const legacyStream = run.legacySessionId ? run.env.sessions.legacy(run.legacySessionId) : undefined;
  if (legacyStream) {
    // Legacy transport: every answer travels on the session's GET stream, the gateway's own too.
    for (const a of inspected.answers) legacyStream.send(JSON.stringify(a));
  } else {
    run.localAnswers = inspected.answers;
  }
  if (inspected.changed) {
    run.body = Buffer.from(encodeJson(inspected.out, decoded.batch));
    // The upstream checks the mirror headers against what it gets: recompute them from the new body.
    const changed = inspected.out[0];
    if (modern && inspected.out.length === 1 && isRequest(changed)) recomputeHeaders(run.x.upstreamHeaders, modern, changed, declarations);
  }
  return false;
}

/** The `x-mcp-header` declarations of a called tool, when the gateway has seen it listed. */
function declarationsFor(run: ExchangeRun, request: JSONRPCRequest): readonly HeaderDeclaration[] | undefined {
  if (request.method !== 'tools/call') return undefined;
  const name = (request.params as { name?: unknown } | undefined)?.name;
  if (typeof name !== 'string') return undefined;
  const known = run.upstream.toolHeaders.of(name);
  // An invalid declaration makes the tool unusable by the spec; mirror nothing for it.
  return known === null ? [] : known;
}

/** A legacy session's shared table, or this exchange's own (checked against its session's). */
function correlatorFor(run: ExchangeRun) {
  if (run.legacySessionId) {
    const stream = run.env.sessions.legacy(run.legacySessionId);
    // No open stream on this replica: nothing could deliver the answers anyway.
    if (stream) return stream.pending;
  }
  const sessionId = run.x.sessionId;
  run.correlation = new ExchangeCorrelation(sessionId ? run.env.sessions.holdInflight(sessionId) : undefined);
  return run.correlation;
}

/** Every message was handled by the gateway: answer without calling the upstream. */
function answerLocally(run: ExchangeRun, inspected: Inspected, batch: boolean): void {
  const { answers, loneRefusal } = inspected;
  if (run.legacySessionId) {
    // Legacy transport: answers belong on the session's GET stream, the POST only gets 202.
    const stream = run.env.sessions.legacy(run.legacySessionId);
    if (stream) {
      for (const a of answers) stream.send(JSON.stringify(a));
      run.writeBody(202, { 'content-type': 'text/plain' }, 'Accepted');
      return;
    }
  }
  if (answers.length === 0) {
    run.writeBody(202, {}, '');
    return;
  }
  if (loneRefusal) {
    sendLoneRefusal(run, loneRefusal);
    return;
  }
  run.writeBody(200, { 'content-type': 'application/json' }, encodeJson(answers, batch));
}

function sendLoneRefusal(run: ExchangeRun, r: Refusal): void {
  run.outcome.refusal = { code: r.code, plugin: r.plugin, message: r.message };
  run.outcome.status = r.status;
  sendRefusal(run.res, r, run.requestId, run.corsHeaders());
}

/**
 * Translation between eras: what a translator is, and what the core gives it.
 *
 * When a request's era (gateway/era/detect.ts) differs from its upstream's (gateway/era/upstream-era.ts),
 * stage 5 dispatches the exchange to the route's translator instead of the upstream. The translator is
 * an in-process upstream (runtime.ts `InProcessUpstream`): it receives the request exactly as an HTTP
 * upstream of the client's era would (after every plugin ran, credentials added, the session id
 * unsealed), talks to the real upstream in the upstream's era through an `UpstreamPort`, and answers
 * in the client's era. Stage 6 then runs the response hooks on that answer as on any other, so plugins
 * only ever see messages of the client's era.
 *
 * A translator may mint its own upstream session ids: the core seals them before the client sees them
 * and hands them back unsealed, so whatever a translator keeps in an id is private and bound to the
 * principal.
 */
import type { Logger } from 'pino';
import type { Principal } from '../contract.ts';
import type { InProcessUpstream, UpstreamCall, UpstreamResponse } from '../runtime.ts';
import type { ToolHeaders } from './tool-headers.ts';

/** The real upstream, reached in its own era. `call.headers` already carry its credentials. */
export interface UpstreamPort {
  send(call: UpstreamCall): Promise<UpstreamResponse>;
}

/** Opaque state the gateway hands a client and must get back unchanged: sealed, bound to the principal. */
export interface StateSealer {
  seal(payload: string, principal: Principal | undefined): string;
  /** Undefined when the value was not sealed by this gateway for this route and principal. */
  open(sealed: string, principal: Principal | undefined): string | undefined;
}

export interface TranslatorDeps {
  upstream: UpstreamPort;
  /** The route's tools' `x-mcp-header` declarations: learned from the lists a translator answers, read to check a 2026 client's headers. */
  tools?: ToolHeaders;
  state: StateSealer;
  log: Logger;
  /** The route name, for logs. */
  route: string;
}

export type Translator = InProcessUpstream & {
  /** Ends every stream and pending exchange (reload, shutdown). */
  close(): void;
};

/**
 * A federation: one MCP endpoint in front of several upstreams (docs/federation.md).
 * (Being written: this first version only fixes the interface the rest of the gateway builds on.)
 */
import type { Logger } from 'pino';
import type { InProcessUpstream, UpstreamCall, UpstreamResponse, UpstreamTarget } from '../runtime.ts';
import { wholeResponse } from '../stdio/response.ts';
import type { FederationConfig, MemberStatus } from './types.ts';

export interface FederationDeps {
  log: Logger;
  /** Every member's upstream target, by upstream name (built before the federation). */
  members: ReadonlyMap<string, UpstreamTarget>;
}

export type Federation = InProcessUpstream & {
  readonly name: string;
  /** Each member's state as last seen. */
  status(): MemberStatus[];
  /** Ends every stream and pending exchange (reload, shutdown). */
  close(): void;
};

export function createFederation(name: string, cfg: FederationConfig, deps: FederationDeps): Federation {
  void deps;
  return {
    name,
    dispatch(_call: UpstreamCall): UpstreamResponse {
      return wholeResponse(503, JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'federation not ready' } }), { 'content-type': 'application/json' });
    },
    status: () => Object.keys(cfg.members).map((member) => ({ member, ok: true, since: Date.now() })),
    close() {},
  };
}

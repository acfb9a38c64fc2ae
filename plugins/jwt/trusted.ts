/**
 * Whose tokens a `jwt` route accepts: its own key source (`keys`, `issuer`, `audience`), the gateway's
 * own authorization server (`authorizationServer: gateway`), or both. Each is a separate trust: a token
 * is checked against the one its `iss` names, with that one's keys, algorithms, audience and tenant
 * claim only, so the authorization server's key can never vouch for a token claiming to come from the
 * identity provider, nor the other way round.
 */
import { decodeJwt } from 'jose';
import type { GatewayAuthorizationServer } from '../../gateway/contract.ts';
import { AuthError } from './challenge.ts';
import type { KeySource } from './keys.ts';
import type { RouteResource } from './resource.ts';

export interface TrustedIssuer {
  key: KeySource['key'];
  algorithms: readonly string[];
  issuer: string[];
  audience: string[];
  tenantClaim: string;
}

/** The trust for the gateway's authorization server: its keys, its issuers, this route's identifiers as audience. */
export function gatewayTrust(as: GatewayAuthorizationServer, resources: RouteResource): TrustedIssuer {
  return {
    key: as.verificationKey,
    algorithms: [...as.algorithms],
    issuer: [...as.issuers],
    audience: [...resources.all],
    tenantClaim: as.tenantClaim,
  };
}

/**
 * The trust a token is to be checked against. With one, that one (jose then reports a wrong `iss`).
 * With two, the one whose issuers include the token's (unverified) `iss`, else the route's own: it is
 * only a choice of which keys to try, the signature and every claim are still verified.
 */
export function trustFor(token: string, trusts: readonly TrustedIssuer[]): TrustedIssuer {
  if (trusts.length === 1) return trusts[0];
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    throw new AuthError('GW_ERR_TOKEN_MALFORMED', 'The token is not a well-formed signed JWT.');
  }
  return trusts.find((t) => typeof iss === 'string' && t.issuer.includes(iss)) ?? trusts[0];
}

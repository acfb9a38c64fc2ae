/**
 * The authorization server as a `jwt` plugin sees it, built from gateway.yaml without serving anything:
 * for `npm run token -- inspect`, which judges a token the way a running gateway would. Tokens the
 * running server revoked itself are in Redis or the key folder's `revoked.txt`, which the plugin reads
 * anyway; nothing here is held in memory. A key folder that does not exist yet is an error here, not
 * created (as the jwt plugin's development keys are not, with `createDevKeys: false`).
 */
import type { LoadedConfig } from '../../config/load.ts';
import type { GatewayAuthorizationServer, ListenerInfo } from '../contract.ts';
import { makeIssuer } from './issuer.ts';
import { loadSigningKeys } from './signing.ts';
import path from 'node:path';

export async function offlineAuthorizationTrust(loaded: LoadedConfig, listeners: ReadonlyMap<string, ListenerInfo>): Promise<GatewayAuthorizationServer | undefined> {
  const cfg = loaded.config.authorization;
  if (!cfg) return undefined;
  const listener = listeners.get(cfg.listener ?? loaded.config.listeners[0].name);
  if (!listener) throw new Error(`authorization.listener: no listener named "${cfg.listener}"`);
  const issuer = makeIssuer(cfg.issuer, listener.publicUrl);
  // Judging a token must not create keys (which would then sign the gateway's tokens from its next start).
  const keys = await loadSigningKeys(cfg.signingKeys, loaded.dir, { create: false });
  return {
    issuers: issuer.all,
    issuerFor: issuer.forHost,
    verificationKey: keys.verificationKey,
    algorithms: keys.algorithms,
    tenantClaim: cfg.tenantClaim,
    revocationFile: keys.dir !== undefined ? path.join(keys.dir, 'revoked.txt') : undefined,
    revoked: () => false,
    trust: () => {},
  };
}

/**
 * Who may be a client of the gateway's authorization server: the ClientRegistry the endpoints use.
 *
 * A `client_id` that is an http(s) URL is a Client ID Metadata Document (metadata-document.ts); any
 * other is one this server issued by Dynamic Client Registration (dynamic.ts). There are no
 * pre-registered clients: every MCP client worth supporting does one of the two.
 */
import type { Logger } from 'pino';
import type { ClientInfo, ClientRegistry, OAuthStore } from '../contracts.ts';
import type { ClientsConfig } from './config.ts';
import { DynamicClients } from './dynamic.ts';
import { looksLikeMetadataUrl, MetadataDocuments } from './metadata-document.ts';
import type { Resolver } from './ssrf-guard.ts';

export { ClientsConfigSchema, clientsConfigDefault, type ClientsConfig, type ClientsConfigInput } from './config.ts';
export { redirectUriMatches, redirectUriProblem } from './redirect-uri.ts';
export { GRANT_TYPES, RESPONSE_TYPES, TOKEN_ENDPOINT_AUTH_METHODS } from './client-metadata.ts';

export interface ClientRegistryDeps {
  store: OAuthStore;
  log: Logger;
  /** For tests: resolves host names for the SSRF guard instead of the system resolver. */
  resolveHost?: Resolver;
}

export function createClientRegistry(config: ClientsConfig, deps: ClientRegistryDeps): ClientRegistry {
  const log = deps.log.child({ component: 'oauth-clients' });
  const documents = new MetadataDocuments(config.metadataDocuments, log, deps.resolveHost);
  const dynamic = new DynamicClients(config.dynamicRegistration, deps.store);
  if (config.metadataDocuments.enabled && config.metadataDocuments.allowPrivateNetworks) {
    log.warn(
      'authorization clients: metadataDocuments.allowPrivateNetworks is on, so anyone who can start a sign-in can make this gateway fetch http: URLs and addresses in its own network (loopback, private, link-local); use it for tests and closed on-prem setups only',
    );
  }

  return {
    resolve(clientId: string): Promise<ClientInfo> {
      return looksLikeMetadataUrl(clientId) ? documents.resolve(clientId) : dynamic.resolve(clientId);
    },
    register(metadata: unknown) {
      return dynamic.register(metadata);
    },
    async verifySecret(client: ClientInfo, secret: string): Promise<boolean> {
      return DynamicClients.verifySecret(client, secret);
    },
    async close(): Promise<void> {
      documents.clear();
    },
  };
}

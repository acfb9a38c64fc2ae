/**
 * Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, the MCP 2026-07-28
 * spec's recommended registration): a `client_id` that is an https URL names a JSON document, served by
 * the client's developer, that describes the client. Nothing is stored; the document is fetched when
 * the client shows up, through the SSRF guard, and cached.
 *
 * Caching: a good document for min(`cacheTtl`, the response's Cache-Control max-age); a failure for
 * `failureTtl`, so a `client_id` pointing at someone else's server cannot be used to make this gateway
 * fetch it on every request. Concurrent resolutions of one URL share a single fetch.
 */
import type { Logger } from 'pino';
import { LRUCache } from 'lru-cache';
import { OAuthError, type ClientInfo } from '../contracts.ts';
import { compileWildcards, type WildcardMatcher } from '../../wildcard.ts';
import type { MetadataDocumentsConfig } from './config.ts';
import { MetadataProblem, readClientMetadata } from './client-metadata.ts';
import { FetchProblem, guardedGet } from './guarded-fetch.ts';
import { SsrfRefusal, type Resolver } from './ssrf-guard.ts';

/** Redirect URIs one document may list (a document is bounded by its byte size as well). */
const MAX_DOCUMENT_REDIRECT_URIS = 20;

type Entry = { client: ClientInfo } | { error: OAuthError };

/** True when a `client_id` is meant as a metadata document URL (rather than an id issued here). */
export function looksLikeMetadataUrl(clientId: string): boolean {
  return /^https?:\/\//i.test(clientId);
}

/** Seconds a response may be reused per its Cache-Control (0 for no-store/no-cache), undefined if unsaid. */
export function cacheLifetime(cacheControl: string | undefined, age: string | undefined): number | undefined {
  if (!cacheControl) return undefined;
  const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim());
  if (directives.some((d) => d === 'no-store' || d === 'no-cache')) return 0;
  // This gateway is a shared cache (one answer serves every user), so s-maxage wins over max-age.
  const pick = (name: string) => {
    const d = directives.find((x) => x.startsWith(`${name}=`));
    const n = d ? Number(d.slice(name.length + 1).replace(/^"|"$/g, '')) : NaN;
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  };
  const maxAge = pick('s-maxage') ?? pick('max-age');
  if (maxAge === undefined) return undefined;
  const already = Number(age);
  return Math.max(0, maxAge - (Number.isFinite(already) && already > 0 ? already : 0));
}

export class MetadataDocuments {
  private readonly cache: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<ClientInfo>>();
  private readonly allowHost?: WildcardMatcher;
  private readonly config: MetadataDocumentsConfig;
  private readonly log: Logger;
  private readonly resolveHost?: Resolver;

  constructor(config: MetadataDocumentsConfig, log: Logger, resolveHost?: Resolver) {
    this.config = config;
    this.log = log;
    this.resolveHost = resolveHost;
    this.cache = new LRUCache<string, Entry>({ max: config.cacheSize });
    if (config.allowHosts) this.allowHost = compileWildcards(config.allowHosts, { ignoreAsciiCase: true, questionMark: false });
  }

  async resolve(clientId: string): Promise<ClientInfo> {
    const url = this.checkClientIdUrl(clientId);
    const hit = this.cache.get(clientId);
    if (hit) {
      if ('error' in hit) throw hit.error;
      return hit.client;
    }
    let pending = this.inflight.get(clientId);
    if (!pending) {
      pending = this.fetchAndCache(clientId, url).finally(() => this.inflight.delete(clientId));
      this.inflight.set(clientId, pending);
    }
    return pending;
  }

  clear(): void {
    this.cache.clear();
  }

  /** The draft's rules for the identifier itself (§3), checked before anything is fetched. */
  private checkClientIdUrl(clientId: string): URL {
    const refuse = (why: string) =>
      new OAuthError('invalid_client', `client_id ${JSON.stringify(clientId.slice(0, 300))} is not a usable client metadata document URL: ${why}`);
    if (!this.config.enabled) {
      throw new OAuthError('invalid_client', 'client ID metadata documents are turned off on this server (metadataDocuments.enabled); register the client instead');
    }
    if (clientId.length > 2_000) throw refuse('it is longer than 2000 characters');
    let url: URL;
    try {
      url = new URL(clientId);
    } catch {
      throw refuse('it is not a URL');
    }
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.config.allowPrivateNetworks)) {
      throw refuse('it must use https');
    }
    if (url.pathname === '/' || url.pathname === '') throw refuse('it must have a path (e.g. https://app.example.com/client.json)');
    if (clientId.includes('#')) throw refuse('it must not have a fragment');
    if (url.username || url.password) throw refuse('it must not contain a user name or password');
    const path = clientId.slice(url.protocol.length + 2).replace(/^[^/?]*/, '').replace(/\?.*$/, '');
    if (/(^|\/)(\.|%2e){1,2}(\/|$)/i.test(path)) throw refuse('it must not contain "." or ".." path segments');
    if (this.allowHost && !this.allowHost(url.hostname)) {
      throw refuse(`its host ${url.hostname} is not one this server accepts clients from (metadataDocuments.allowHosts)`);
    }
    return url;
  }

  private async fetchAndCache(clientId: string, url: URL): Promise<ClientInfo> {
    try {
      const { client, ttlMs } = await this.fetchDocument(clientId, url);
      // lru-cache treats ttl 0 as "forever": a document that may not be cached is simply not stored.
      if (ttlMs > 0) this.cache.set(clientId, { client }, { ttl: ttlMs });
      return client;
    } catch (err) {
      const error = err instanceof OAuthError ? err : new OAuthError('invalid_client', `the client metadata document at ${clientId} could not be fetched: ${(err as Error).message}`);
      this.log.info({ clientId: clientId.slice(0, 300), error: error.message }, 'client metadata document refused');
      if (this.config.failureTtl > 0) this.cache.set(clientId, { error }, { ttl: this.config.failureTtl });
      throw error;
    }
  }

  private async fetchDocument(clientId: string, url: URL): Promise<{ client: ClientInfo; ttlMs: number }> {
    const fetchFailed = (why: string) => new OAuthError('invalid_client', `the client metadata document at ${clientId} could not be fetched: ${why}`);
    const unusable = (why: string) => new OAuthError('invalid_request', `the client metadata document at ${clientId} is unusable: ${why}`);
    let res;
    try {
      res = await guardedGet(url, {
        timeoutMs: this.config.timeout,
        maxBytes: this.config.maxBytes,
        allowPrivateNetworks: this.config.allowPrivateNetworks,
        accept: 'application/json',
        resolve: this.resolveHost,
      });
    } catch (err) {
      if (err instanceof FetchProblem || err instanceof SsrfRefusal) throw fetchFailed(err.message);
      throw err;
    }
    if (res.status !== 200) throw fetchFailed(`the server answered HTTP ${res.status}`);
    const type = (res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && !/^application\/[a-z0-9.+-]*\+json$/.test(type)) {
      throw unusable(`it is served as ${type ? JSON.stringify(type) : 'no content type'}, not application/json`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(res.body.toString('utf8'));
    } catch {
      throw unusable('it is not valid JSON');
    }
    const client = this.validate(clientId, doc, unusable);
    const lifetime = cacheLifetime(res.headers['cache-control'], res.headers.age as string | undefined);
    const ttlMs = lifetime === undefined ? this.config.cacheTtl : Math.min(this.config.cacheTtl, lifetime * 1000);
    return { client, ttlMs };
  }

  private validate(clientId: string, doc: unknown, unusable: (why: string) => OAuthError): ClientInfo {
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw unusable('it is not a JSON object');
    const fields = doc as Record<string, unknown>;
    // The draft's central rule: the document must claim the very URL it was fetched from, compared as
    // strings, so a document copied to another address cannot speak for a different client.
    if (fields.client_id !== clientId) {
      throw unusable(`its client_id ${JSON.stringify(String(fields.client_id).slice(0, 300))} is not the URL it was fetched from`);
    }
    if ('client_secret' in fields || 'client_secret_expires_at' in fields) {
      throw unusable('it contains a client_secret; a metadata document is public and must not');
    }
    try {
      const meta = readClientMetadata(fields, { maxRedirectUris: MAX_DOCUMENT_REDIRECT_URIS, allowSecretMethods: false });
      return {
        clientId,
        kind: 'metadata-document',
        redirectUris: meta.redirectUris,
        tokenEndpointAuthMethod: 'none',
        grantTypes: meta.grantTypes,
        ...(meta.clientName ? { clientName: meta.clientName } : {}),
        ...(meta.clientUri ? { clientUri: meta.clientUri } : {}),
        ...(meta.scope ? { scope: meta.scope } : {}),
      };
    } catch (err) {
      if (err instanceof MetadataProblem) throw unusable(err.message);
      throw err;
    }
  }
}

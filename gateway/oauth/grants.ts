/**
 * What a person's consent turns into: an authorization code, then access tokens (JWTs the `jwt` plugin
 * verifies) and refresh tokens, with the single-use and reuse rules of OAuth 2.1:
 *
 * - a code is redeemed once (OAuthStore.take); presented again, every token issued from it is revoked
 *   (§4.1.3: someone else has the code);
 * - refresh tokens rotate: each use returns a new one; an old one presented again revokes the whole
 *   family, i.e. every refresh and access token descended from the same consent (§6.1, BCP 240 §4.14);
 * - a refresh token is bound to its client and its resource.
 *
 * Codes and refresh tokens are random and stored only as their SHA-256: the store (Redis, a memory
 * dump) never holds a usable credential.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Logger } from 'pino';
import { OAuthError, type Account, type OAuthStore } from './contracts.ts';
import type { SigningKeys } from './signing.ts';

export interface GrantSettings {
  accessTokenTtl: number;
  refreshTokenTtl: number;
  codeTtl: number;
  tenantClaim: string;
}

/** What the authorization request established, kept under the code until it is redeemed. */
export interface CodeGrant {
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  resource: string;
  scopes: string[];
  account: Account;
  /** The issuer the client was shown (and told in `iss`): its tokens carry it. */
  issuer: string;
  /** Whether the client may use refresh tokens (its registered grant types). */
  refresh: boolean;
}

interface Family {
  clientId: string;
  resource: string;
  scopes: string[];
  account: Account;
  issuer: string;
  refresh: boolean;
  /** Access tokens issued in this family that may not have expired: [jti, exp in epoch seconds]. */
  tokens: Array<[string, number]>;
  revoked?: boolean;
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  refresh_token?: string;
}

/**
 * Revokes an access token by its `jti`. Resolves once the revocation is recorded where other processes
 * look (Redis, the key folder's revoked.txt), so an answer sent after it is true for every replica and
 * for `npm run token -- inspect`; never rejects (a failure is logged, this process still refuses it).
 */
export interface Revoker {
  (jti: string, untilMs: number, why: string): Promise<void>;
}

const MAX_TOKENS_PER_FAMILY = 100;
export const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');
const secret = () => randomBytes(32).toString('base64url');

export class Grants {
  readonly #store: OAuthStore;
  readonly #keys: SigningKeys;
  readonly #cfg: GrantSettings;
  readonly #revoke: Revoker;
  readonly #log: Logger;

  constructor(deps: { store: OAuthStore; keys: SigningKeys; settings: GrantSettings; revoke: Revoker; log: Logger }) {
    this.#store = deps.store;
    this.#keys = deps.keys;
    this.#cfg = deps.settings;
    this.#revoke = deps.revoke;
    this.#log = deps.log;
  }

  async issueCode(grant: CodeGrant): Promise<string> {
    const code = secret();
    await this.#store.put('code', sha256(code), grant, this.#cfg.codeTtl);
    return code;
  }

  /**
   * Redeems a code: `check` throws an OAuthError when the request does not fit the grant (another
   * client, redirect URI, PKCE verifier or resource). The code is spent either way.
   */
  async redeemCode(code: string, check: (grant: CodeGrant) => void): Promise<TokenResponse> {
    const key = sha256(code);
    const grant = await this.#store.take<CodeGrant>('code', key);
    if (!grant) {
      const used = await this.#store.get<{ familyId: string }>('code-used', key);
      if (used) {
        this.#log.warn({ family: used.familyId }, 'an authorization code was presented a second time: every token issued from it is revoked');
        await this.revokeFamily(used.familyId, 'authorization code reused');
      }
      throw new OAuthError('invalid_grant', 'The authorization code is invalid, expired or already used.');
    }
    check(grant);
    const familyId = randomUUID();
    const family: Family = {
      clientId: grant.clientId, resource: grant.resource, scopes: grant.scopes, account: grant.account,
      issuer: grant.issuer, refresh: grant.refresh, tokens: [],
    };
    // Remembered as long as a refresh token of this grant could live, so a late replay still revokes.
    await this.#store.put('code-used', key, { familyId }, this.#cfg.refreshTokenTtl);
    return this.#issue(familyId, family, family.scopes);
  }

  /** The refresh grant: rotation and reuse detection (see the top of this file). */
  async refresh(token: string, clientId: string, params: { resource?: string; scope?: string }): Promise<TokenResponse> {
    const key = sha256(token);
    const invalid = () => new OAuthError('invalid_grant', 'The refresh token is invalid, expired, revoked or already used.');
    const current = await this.#store.get<{ familyId: string }>('refresh', key);
    if (!current) {
      await this.#reused(key);
      throw invalid();
    }
    const family = await this.#store.get<Family>('family', current.familyId);
    if (!family || family.revoked) throw invalid();
    if (family.clientId !== clientId) {
      // A client presenting another client's refresh token has stolen it.
      this.#log.warn({ family: current.familyId }, "a refresh token was presented by another client than its own: its family is revoked");
      await this.revokeFamily(current.familyId, 'refresh token presented by another client');
      throw invalid();
    }
    if (params.resource !== undefined && params.resource !== family.resource) {
      throw new OAuthError('invalid_target', `This refresh token is for ${family.resource}.`);
    }
    let scopes = family.scopes;
    if (params.scope !== undefined) {
      const asked = params.scope.split(' ').filter(Boolean);
      const extra = asked.filter((s) => !family.scopes.includes(s));
      if (extra.length) throw new OAuthError('invalid_scope', `Not granted to this refresh token: ${extra.join(' ')}.`);
      scopes = asked;
    }
    // Only now spend it, atomically: of two concurrent uses one wins, the other counts as a reuse.
    if (!(await this.#store.take('refresh', key))) {
      await this.#reused(key);
      throw invalid();
    }
    await this.#store.put('refresh-used', key, current, this.#cfg.refreshTokenTtl);
    return this.#issue(current.familyId, family, scopes);
  }

  /** RFC 7009 for a refresh token: its family ends. False when it is not one of ours (or not this client's). */
  async revokeRefreshToken(token: string, clientId: string): Promise<boolean> {
    const key = sha256(token);
    const current = (await this.#store.get<{ familyId: string }>('refresh', key)) ?? (await this.#store.get<{ familyId: string }>('refresh-used', key));
    if (!current) return false;
    const family = await this.#store.get<Family>('family', current.familyId);
    if (!family || family.clientId !== clientId) return false;
    await this.revokeFamily(current.familyId, 'revoked by its client');
    return true;
  }

  async revokeFamily(familyId: string, why: string): Promise<void> {
    const family = await this.#store.get<Family>('family', familyId);
    if (!family) return;
    family.revoked = true;
    await this.#store.put('family', familyId, family, this.#cfg.refreshTokenTtl);
    await Promise.all(family.tokens.map(([jti, exp]) => this.#revoke(jti, exp * 1000, why)));
  }

  async #reused(key: string): Promise<void> {
    const used = await this.#store.get<{ familyId: string }>('refresh-used', key);
    if (!used) return;
    this.#log.warn({ family: used.familyId }, 'a refresh token was presented a second time: its whole family is revoked');
    await this.revokeFamily(used.familyId, 'refresh token reused');
  }

  async #issue(familyId: string, family: Family, scopes: string[]): Promise<TokenResponse> {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + Math.max(1, Math.round(this.#cfg.accessTokenTtl / 1000));
    const jti = randomUUID();
    const signing = this.#keys.current();
    const claims: Record<string, unknown> = { [this.#cfg.tenantClaim]: family.account.tenant, client_id: family.clientId };
    if (scopes.length) claims.scope = scopes.join(' ');
    const accessToken = await new SignJWT(claims)
      // RFC 9068's media type for JWT access tokens: never mistaken for an ID token.
      .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: 'at+jwt' })
      .setIssuer(family.issuer)
      .setSubject(family.account.subject)
      .setAudience(family.resource)
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(signing.key);
    family.tokens = family.tokens.filter(([, e]) => e > now).slice(-(MAX_TOKENS_PER_FAMILY - 1));
    family.tokens.push([jti, exp]);
    const response: TokenResponse = { access_token: accessToken, token_type: 'Bearer', expires_in: exp - now, scope: scopes.join(' ') };
    if (family.refresh) {
      const refreshToken = secret();
      await this.#store.put('refresh', sha256(refreshToken), { familyId }, this.#cfg.refreshTokenTtl);
      response.refresh_token = refreshToken;
    }
    await this.#store.put('family', familyId, family, this.#cfg.refreshTokenTtl);
    return response;
  }
}

/**
 * A provider's validated claims → the gateway's Account: subject, tenant, scopes, display name.
 * Pure functions, so every refusal can be tested without a provider. Refusals are OAuthError
 * `access_denied` whose description names the claim and what was wrong with it: the person (or the
 * operator reading the log) must be able to tell a missing mapper from a wrong domain.
 */
import { OAuthError, type Account } from '../contracts.ts';
import { SCOPE_PATTERN } from '../scope.ts';
import type { OidcConfig } from './oidc-config.ts';

export type Claims = Record<string, unknown>;

/**
 * A claim by path, read as the jwt plugin reads `tenantClaim` (so a path means the same in both): the
 * whole name first (Auth0's `https://example.com/tenant`), then dot by dot (`org.id`). Own properties
 * only, so no path reaches `__proto__` or `constructor`. (The core does not import plugins, hence not
 * shared with plugins/jwt/claims.ts.)
 */
export function claimAt(claims: Claims, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let node: unknown = claims;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object' || Array.isArray(node) || !Object.hasOwn(node, key)) return undefined;
    node = (node as Claims)[key];
  }
  return node;
}

function denied(description: string): OAuthError {
  return new OAuthError('access_denied', description, 403);
}

/**
 * Prefix of every subject from this provider: the issuer's host and path (`accounts.google.com`,
 * `keycloak.example.com/realms/acme`). It ends in `|`, which a users-file name can never contain
 * (USERNAME_PATTERN), so an OIDC account and a users-file account never share a subject, and two
 * providers (or two realms of one Keycloak) never share one either.
 */
export function subjectPrefix(issuer: string): string {
  const url = new URL(issuer);
  return `${url.host}${url.pathname.replace(/\/+$/, '')}|`;
}

/** `email_verified` is a boolean by the spec; some providers (Cognito) send the string "true". */
function verifiedEmail(claims: Claims): string | undefined {
  const email = claims.email;
  const verified = claims.email_verified === true || claims.email_verified === 'true';
  return typeof email === 'string' && email.includes('@') && verified ? email.toLowerCase() : undefined;
}

function domainOf(email: string): string {
  return email.slice(email.lastIndexOf('@') + 1);
}

/** A claim's value as strings: a string or safe integer is one value, a list gives its strings. */
function claimStrings(value: unknown): string[] | undefined {
  if (typeof value === 'string' && value !== '') return [value];
  if (typeof value === 'number' && Number.isSafeInteger(value)) return [String(value)];
  if (Array.isArray(value)) {
    const out = value.flatMap((v) => claimStrings(v) ?? []);
    return out.length > 0 ? out : undefined;
  }
  return undefined;
}

export function tenantOf(claims: Claims, cfg: OidcConfig): string {
  const pattern = new RegExp(cfg.tenantPattern);
  const t = cfg.tenant;
  if (t.fixed !== undefined) return t.fixed;

  if (t.emails !== undefined) {
    const email = verifiedEmail(claims);
    if (!email) throw denied('The sign-in provider did not give a verified "email" (email_verified: true), which decides the tenant here.');
    const tenant = t.emails[email] ?? t.emails[`@${domainOf(email)}`];
    if (tenant === undefined) throw denied(`No tenant is configured for ${email} or its domain.`);
    return tenant;
  }

  const claim = t.claim as string;
  const values = claimStrings(claimAt(claims, claim));
  if (!values) throw denied(`The sign-in provider's claims have no "${claim}" naming the tenant.`);
  const candidates = new Set<string>();
  for (const value of values) {
    if (t.values) {
      // Own properties only: a claim value such as "__proto__" must not reach the prototype.
      if (Object.hasOwn(t.values, value)) candidates.add(t.values[value]);
    } else if (pattern.test(value)) {
      candidates.add(value);
    }
  }
  if (candidates.size === 0) {
    throw denied(t.values
      ? `The value of "${claim}" is not one the gateway maps to a tenant.`
      : `The tenant in "${claim}" does not match ${cfg.tenantPattern}.`);
  }
  if (candidates.size > 1) throw denied(`"${claim}" names more than one tenant; the gateway needs exactly one.`);
  return [...candidates][0];
}

function scopesOf(claims: Claims, cfg: OidcConfig): string[] {
  const out = new Set(cfg.grantScopes);
  if (cfg.scopesClaim) {
    const raw = claimAt(claims, cfg.scopesClaim);
    const list = typeof raw === 'string' ? raw.split(/\s+/) : Array.isArray(raw) ? raw : [];
    for (const s of list) if (typeof s === 'string' && SCOPE_PATTERN.test(s)) out.add(s);
  }
  return [...out];
}

function displayNameOf(claims: Claims): string | undefined {
  for (const key of ['name', 'preferred_username', 'email']) {
    const v = claims[key];
    if (typeof v === 'string' && v.trim() !== '') return v.trim().slice(0, 200);
  }
  return undefined;
}

/** The Account for a person the provider signed in, or OAuthError access_denied saying why not. */
export function accountFrom(claims: Claims, cfg: OidcConfig): Account {
  const host = new URL(cfg.issuer).host;
  if (cfg.allowedDomains) {
    const email = verifiedEmail(claims);
    if (!email) throw denied('Sign-in here needs a verified "email" (email_verified: true) from the provider.');
    if (!cfg.allowedDomains.includes(domainOf(email))) throw denied(`Accounts of ${domainOf(email)} may not sign in here.`);
  }
  const id = claimAt(claims, cfg.subjectClaim);
  const subject = typeof id === 'number' && Number.isSafeInteger(id) ? String(id) : id;
  if (typeof subject !== 'string' || subject === '') {
    throw denied(`The sign-in provider's claims have no "${cfg.subjectClaim}" identifying the person.`);
  }
  if (cfg.subjectClaim === 'email' && !verifiedEmail(claims)) {
    throw denied('"email" identifies people here, and the provider did not say it is verified (email_verified: true).');
  }
  return {
    subject: subjectPrefix(cfg.issuer) + subject,
    tenant: tenantOf(claims, cfg),
    scopes: scopesOf(claims, cfg),
    displayName: displayNameOf(claims),
    source: `oidc:${host}`,
  };
}

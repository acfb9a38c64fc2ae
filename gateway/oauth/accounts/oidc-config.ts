/**
 * Sign-in through an upstream OpenID Connect provider: the `oidc:` part of the `authorization:` section.
 * Every default is written next to its field; docs/oauth-oidc.md is the reader's version.
 *
 * The gateway is an ordinary confidential (or public) client of the provider. What the provider says
 * about a person becomes an Account here: who (`subjectClaim`), which tenant (`tenant`) and which scopes
 * (`grantScopes`, `scopesClaim`). The tenant is always decided by this configuration and the provider's
 * signed claims, never by the MCP client.
 */
import { z } from 'zod';
import { bool, duration } from '../../../config/units.ts';

/** The jwt plugin's default: a tenant outside it could not use the tokens the gateway issues. */
export const DEFAULT_TENANT_PATTERN = '^[a-z0-9-]{1,64}$';

/** Parameters the sign-in sets itself; `authorizationParams` may not override them. */
const PROTOCOL_PARAMS = new Set([
  'client_id', 'redirect_uri', 'response_type', 'response_mode', 'scope', 'state', 'nonce',
  'code_challenge', 'code_challenge_method', 'request', 'request_uri',
]);

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/** https, or http on a loopback host (a provider on the same machine, tests). */
export function isAllowedIssuer(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
}

const TenantSchema = z
  .strictObject({
    /**
     * Claim naming the tenant; a dotted path reads nested claims (`org.id`). A list value (groups,
     * organizations) must yield exactly one tenant. Numbers are read as their decimal string.
     */
    claim: z.string().min(1).optional(),
    /**
     * With `claim`: claim value → tenant. Values not listed are refused, so this is also an allow-list
     * (Google's `hd` is a domain such as `acme.com`, which is not a valid tenant id by itself).
     */
    values: z.record(z.string().min(1), z.string()).optional(),
    /** Every person who signs in here belongs to this tenant (single-tenant setups). */
    fixed: z.string().optional(),
    /**
     * Verified e-mail address → tenant: keys are whole addresses (`bob@gmail.com`) or domains written
     * `@acme.com`; a whole address wins over its domain. The provider must say `email_verified: true`.
     */
    emails: z.record(z.string().regex(/^[^@\s]*@[^@\s]+$/, 'use an address (bob@example.com) or a domain (@example.com)'), z.string())
      // Addresses are compared lower-cased (the claim is lower-cased too): `Bob@Acme.com` is bob@acme.com.
      .transform((m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v])))
      .optional(),
  })
  .superRefine((t, ctx) => {
    const given = [t.claim, t.fixed, t.emails].filter((v) => v !== undefined).length;
    if (given !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of claim, fixed or emails' });
    if (t.values && t.claim === undefined) ctx.addIssue({ code: 'custom', path: ['values'], message: 'values maps the values of claim; give claim too' });
  });

export const OidcConfigSchema = z
  .strictObject({
    /**
     * The provider's issuer URL, exactly as its discovery document says (`https://accounts.google.com`,
     * `https://keycloak.example.com/realms/acme`, `https://login.microsoftonline.com/<tenant-id>/v2.0`,
     * `https://acme.eu.auth0.com/`). `<issuer>/.well-known/openid-configuration` must answer. https only,
     * except on a loopback host.
     */
    issuer: z.url().refine((u) => isAllowedIssuer(new URL(u)), 'use https (http only on localhost, 127.0.0.1 or [::1])'),
    /** The client id the provider gave the gateway. */
    clientId: z.string().min(1),
    /**
     * The client secret, usually `${OIDC_CLIENT_SECRET}`. Without one the gateway is a public client and
     * relies on PKCE alone (the provider must allow that).
     */
    clientSecret: z.string().min(1).optional(),
    /**
     * How the secret is sent to the token endpoint. Default: `client_secret_basic` when the provider
     * lists it (or lists nothing; it is the OpenID default), else `client_secret_post`; `none` without
     * a secret.
     */
    tokenEndpointAuthMethod: z.enum(['client_secret_basic', 'client_secret_post', 'none']).optional(),
    /** Text of the login page's button. Default `Sign in with <provider>` (Google, Microsoft, or the issuer's host). */
    label: z.string().trim().min(1).max(100).optional(),
    /** Scopes asked of the provider. Default `[openid, email, profile]`; must include `openid`. */
    scopes: z.array(z.string().min(1)).default(['openid', 'email', 'profile'])
      .refine((s) => s.includes('openid'), 'must include openid'),
    /**
     * Extra authorization request parameters, e.g. `{ prompt: select_account }`, Google's `hd`, Auth0's
     * `organization`, Entra's `domain_hint`. They may not replace the protocol's own. Default none.
     */
    authorizationParams: z.record(z.string(), z.string()).default({})
      .refine((p) => Object.keys(p).every((k) => !PROTOCOL_PARAMS.has(k)), `may not set ${[...PROTOCOL_PARAMS].join(', ')}`),
    /** Which tenant a person belongs to. Required: there is no safe default. */
    tenant: TenantSchema,
    /** Anchored regular expression every tenant id must match. Default `^[a-z0-9-]{1,64}$` (the jwt plugin's). */
    tenantPattern: z.string().default(DEFAULT_TENANT_PATTERN)
      .refine((p) => p.startsWith('^') && p.endsWith('$'), 'must be anchored with ^ and $')
      .refine((p) => { try { new RegExp(p); return true; } catch { return false; } }, 'not a valid regular expression'),
    /**
     * Claim identifying the person; a dotted path reads nested claims. Default `sub` (stable; `email`
     * can change and be reassigned). The account's subject is `<issuer host and path>|<value>`.
     */
    subjectClaim: z.string().min(1).default('sub'),
    /** Scopes every account from this provider may be granted. Default none. */
    grantScopes: z.array(z.string().min(1)).default([]),
    /**
     * Claim with more scopes for the account (a space-separated string or a list, e.g. Keycloak's
     * `realm_access.roles`), added to `grantScopes`. Default none.
     */
    scopesClaim: z.string().min(1).optional(),
    /**
     * Only people with a verified e-mail address in one of these domains may sign in (`acme.com`; a
     * subdomain must be listed itself). Default: anyone the provider signs in.
     */
    allowedDomains: z.array(z.string().min(1).transform((d) => d.toLowerCase().replace(/^@/, ''))).optional(),
    /**
     * Also read the provider's userinfo endpoint and add its claims to the ID token's (which win when
     * both have one). Needed when the tenant claim is only in userinfo. Default false.
     */
    userinfo: bool().default(false),
    /** How long a started sign-in may take at the provider before its state expires. Default 10m. */
    stateTtl: duration().pipe(z.number().min(1_000)).default(600_000),
    /** Time for each request to the provider (discovery, token, userinfo, keys). Default 10s. */
    timeout: duration().pipe(z.number().min(1_000)).default(10_000),
    /**
     * After discovery failed, how long sign-ins are refused without asking the provider again, so a
     * provider that is down is not hammered. Default 10s.
     */
    discoveryRetry: duration().default(10_000),
  })
  .superRefine((c, ctx) => {
    const pattern = new RegExp(c.tenantPattern);
    const targets: Array<[string[], string]> = [];
    if (c.tenant.fixed !== undefined) targets.push([['tenant', 'fixed'], c.tenant.fixed]);
    for (const [k, v] of Object.entries(c.tenant.values ?? {})) targets.push([['tenant', 'values', k], v]);
    for (const [k, v] of Object.entries(c.tenant.emails ?? {})) targets.push([['tenant', 'emails', k], v]);
    for (const [path, tenant] of targets) {
      if (!pattern.test(tenant)) ctx.addIssue({ code: 'custom', path, message: `a tenant matches ${c.tenantPattern}; got ${JSON.stringify(tenant)}` });
    }
    if (c.tokenEndpointAuthMethod && c.tokenEndpointAuthMethod !== 'none' && !c.clientSecret) {
      ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: `${c.tokenEndpointAuthMethod} needs a clientSecret` });
    }
  });

export type OidcConfig = z.infer<typeof OidcConfigSchema>;
/** What a YAML author writes (defaults optional). */
export type OidcConfigInput = z.input<typeof OidcConfigSchema>;

/**
 * The pages a person sees during sign-in, as the authorization endpoint calls them. They are rendered
 * by gateway/oauth/pages/ (plain HTML, no scripts, every value escaped); the endpoint only decides which
 * page, with what, and the HTTP around it.
 */
export interface ClientSummary {
  /** Untrusted text (the client's own `client_name`): the pages escape it. */
  name: string;
  id: string;
  /** Where the answer will go: the redirect URI's host, so a person can spot an impostor. */
  redirectHost: string;
}

export interface Pages {
  renderLoginPage(p: {
    action: string; csrfToken: string; requestId: string; client: ClientSummary; scopes: string[]; resource: string;
    username?: string; error?: string; passwordEnabled: boolean; oidc?: { label: string; href: string };
  }): string;
  renderConsentPage(p: {
    action: string; csrfToken: string; requestId: string; client: ClientSummary;
    account: { displayName?: string; subject: string; tenant: string }; scopes: string[]; resource: string;
  }): string;
  renderErrorPage(p: { title: string; message: string }): string;
}

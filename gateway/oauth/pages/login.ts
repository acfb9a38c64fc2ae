/**
 * The login page: who is asking, then username and password (users file) and/or a button to the
 * organisation's OpenID Connect provider. Posts `request_id, csrf, username, password` to `action`.
 */
import { html, safeHref } from './html.ts';
import { layout, requestSummary, type RequestSummary } from './layout.ts';

export interface LoginPage extends RequestSummary {
  action: string;
  csrfToken: string;
  requestId: string;
  /** The username typed last time, kept so only the password needs retyping. */
  username?: string;
  /** Why the last attempt failed; announced to screen readers (role="alert"). */
  error?: string;
  passwordEnabled: boolean;
  /** `label` is the whole button text (`Sign in with Google` by default, oidc.ts defaultLabel). */
  oidc?: { label: string; href: string };
}

const ERROR_ID = 'login-error';

export function renderLoginPage(p: LoginPage): string {
  // Inputs name the error in aria-describedby, so a screen reader reads it with the field, not only once.
  const describedBy = p.error ? html` aria-describedby="${ERROR_ID}"` : '';
  // Focus goes where typing resumes: the username on a first visit, the password after a failure.
  const focusUser = !p.username;
  const form = p.passwordEnabled && html`
<form method="post" action="${p.action}">
<input type="hidden" name="request_id" value="${p.requestId}">
<input type="hidden" name="csrf" value="${p.csrfToken}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="${p.username ?? ''}" autocomplete="username" autocapitalize="none" spellcheck="false" required${describedBy}${focusUser && html` autofocus`}>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required${describedBy}${!focusUser && html` autofocus`}>
<div class="actions"><button type="submit">Sign in</button></div>
</form>`;
  const oidc = p.oidc && html`
${p.passwordEnabled && html`<p class="divider">or</p>`}
<p><a class="button${p.passwordEnabled ? ' secondary' : ''}" href="${safeHref(p.oidc.href)}">${p.oidc.label}</a></p>`;
  const body = html`<h1>Sign in</h1>
<p><strong>${p.client.name}</strong> asks to use this server with your account.</p>
${requestSummary(p)}
${p.error && html`<p id="${ERROR_ID}" class="alert" role="alert">${p.error}</p>`}
${form}${oidc}
${!p.passwordEnabled && !p.oidc && html`<p>This server has no way to sign in configured. Ask its operator.</p>`}`;
  return layout({ title: 'Sign in', body });
}

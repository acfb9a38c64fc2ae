/**
 * The consent page: the signed-in person sees who asks, for which scopes on which server, and as which
 * tenant they would act, then allows or denies. Posts `request_id, csrf, decision=allow|deny`.
 */
import { html } from './html.ts';
import { layout, requestSummary, type RequestSummary } from './layout.ts';

export interface ConsentPage extends RequestSummary {
  action: string;
  csrfToken: string;
  requestId: string;
  account: { displayName?: string; subject: string; tenant: string };
}

export function renderConsentPage(p: ConsentPage): string {
  const who = p.account.displayName
    ? html`<strong>${p.account.displayName}</strong> (<code>${p.account.subject}</code>)`
    : html`<strong><code>${p.account.subject}</code></strong>`;
  const body = html`<h1>Allow access?</h1>
<p><strong>${p.client.name}</strong> asks to act as ${who} in tenant <strong><code>${p.account.tenant}</code></strong>.</p>
${requestSummary(p)}
<form method="post" action="${p.action}">
<input type="hidden" name="request_id" value="${p.requestId}">
<input type="hidden" name="csrf" value="${p.csrfToken}">
<div class="actions">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</div>
</form>
<p class="note">Allow only an application you are connecting yourself, right now. It will be able to do what
you can do in tenant <code>${p.account.tenant}</code>, within the permissions above, until its access expires or is revoked.</p>`;
  return layout({ title: 'Allow access?', body });
}

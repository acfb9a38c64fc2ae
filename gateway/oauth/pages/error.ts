/** The page shown when a sign-in cannot go on (an expired request, an unknown client…). */
import { html } from './html.ts';
import { layout } from './layout.ts';

export function renderErrorPage(p: { title: string; message: string }): string {
  return layout({
    title: p.title,
    body: html`<h1>${p.title}</h1>
<p>${p.message}</p>
<p class="note">You can close this window and start connecting again from your application.</p>`,
  });
}

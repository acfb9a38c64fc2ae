/**
 * The frame every sign-in page shares, and the summary of the request a person is asked about.
 *
 * Content-Security-Policy these pages need (the endpoint sends it, gateway/oauth/http.ts):
 *   style-src 'unsafe-inline'  the one inline <style> below (no style attributes are used);
 *   form-action 'self'          the forms post to this server; after the consent POST the browser follows
 *                               a 303 to the client's redirect URI, and Chromium applies form-action to
 *                               that redirect too, so the consent page's policy also names that URI's
 *                               origin, or its scheme when private-use (`cursor:`); see csp.ts;
 *   nothing else: no scripts, images, fonts or other requests. `default-src 'none'` fits.
 *
 * Accessibility: one <main> with one <h1>; every input has a <label for>; an error is a role="alert"
 * element that the inputs name in aria-describedby; focus is always visible (a 3px outline); colours
 * meet WCAG AA contrast (body text 17:1, buttons 6.7:1, error text 8.8:1, focus outline 5:1); buttons keep a border so
 * they stay visible in forced-colors (Windows high contrast) mode; the layout reflows down to 320px.
 */
import { Html, html } from './html.ts';

const STYLE = `
*,*::before,*::after{box-sizing:border-box}
html{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5;color:#1b1b1b;background:#f3f4f6}
body{margin:0;padding:1rem}
main{max-width:28rem;margin:2rem auto;padding:1.5rem;background:#fff;border:1px solid #d1d5db;border-radius:.5rem}
h1{font-size:1.4rem;margin:0 0 1rem}
h2{font-size:1rem;margin:1.25rem 0 .25rem}
p{margin:.5rem 0}
dl{margin:.5rem 0;display:grid;grid-template-columns:auto 1fr;gap:.25rem .75rem}
dt{font-weight:600}
dd{margin:0;overflow-wrap:anywhere}
ul{margin:.25rem 0;padding-left:1.25rem}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em;overflow-wrap:anywhere}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text],input[type=password]{width:100%;padding:.6rem;font:inherit;color:#1b1b1b;background:#fff;border:1px solid #6b7280;border-radius:.25rem}
.actions{display:flex;flex-wrap:wrap;gap:.75rem;margin-top:1.25rem}
button,.button{display:inline-block;padding:.6rem 1.2rem;font:inherit;font-weight:600;text-decoration:none;border-radius:.25rem;cursor:pointer;border:2px solid #1d4ed8;background:#1d4ed8;color:#fff}
button.secondary,.button.secondary{background:#fff;color:#1b1b1b;border-color:#4b5563}
:focus-visible{outline:3px solid #b45309;outline-offset:2px}
.alert{padding:.75rem;border:2px solid #a4161a;border-radius:.25rem;background:#fdecec;color:#7f1d1d;font-weight:600}
.note{color:#374151;font-size:.95rem}
.divider{margin:1.25rem 0;text-align:center;color:#374151}
`;

/** The stylesheet is a constant of this file, not data: it goes in as written. */
const STYLE_HTML = new Html(STYLE);

/** A whole page: send-ready HTML. */
export function layout(p: { title: string; body: Html }): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>${p.title}</title>
<style>${STYLE_HTML}</style>
</head>
<body>
<main>
${p.body}
</main>
</body>
</html>
`.value;
}

export interface RequestSummary {
  client: { name: string; id: string; redirectHost: string };
  scopes: string[];
  resource: string;
}

/**
 * Who is asking and for what. The client's name is whatever its author chose, so its id and the host
 * the answer goes to are shown next to it: a look-alike name ("Claude") with a stranger's redirect host
 * can be spotted.
 */
export function requestSummary(p: RequestSummary): Html {
  return html`<dl>
<dt>Application</dt><dd>${p.client.name}</dd>
<dt>Client ID</dt><dd><code>${p.client.id}</code></dd>
<dt>Returns to</dt><dd><code>${p.client.redirectHost}</code></dd>
<dt>Server</dt><dd><code>${p.resource}</code></dd>
</dl>
<h2>Permissions requested</h2>
${p.scopes.length
    ? html`<ul>${p.scopes.map((s) => html`<li><code>${s}</code></li>`)}</ul>`
    : html`<p class="note">The application did not ask for specific scopes.</p>`}`;
}

/**
 * The pages a person sees while an application signs them in: plain HTML strings, ready to send, with
 * every value escaped (html.ts), no scripts and no external assets. Headers (CSP, X-Frame-Options,
 * no-store) are the endpoint's; layout.ts says what the pages need from the CSP.
 */
export { renderLoginPage, type LoginPage } from './login.ts';
export { renderConsentPage, type ConsentPage } from './consent.ts';
export { renderErrorPage } from './error.ts';

/**
 * `{tenant}`, `{sub}` and `{session}` templates in a stdio upstream's args, env, pathEnv, cwd and poolKey.
 *
 * The values come from the verified principal and the stdio upstream's own session ids, but they end up in
 * file paths and command lines, so they are made safe here, by construction:
 * - `tenant` must already match the tenant alphabet `^[a-z0-9-]*$` (checked again: refused otherwise);
 * - `sub` and `session` are encoded: letters, digits, `_`, `@`, `.` and `-` stay, every other byte becomes
 *   `~XX` (hex). The encoding is injective (`~` itself is encoded), so two subjects never render the same
 *   value and never share a data file, and no `/` or `\` can appear;
 * - a rendered path segment that contains a value and is `.` or `..` is refused (e.g. `data/{sub}/x`
 *   with the subject `..`).
 */
import { StdioConfigError, StdioUpstreamError } from './errors.ts';

export const TEMPLATE_VARIABLES = ['tenant', 'sub', 'session'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];
export type TemplateValues = Readonly<Record<TemplateVariable, string>>;

/** `{word}`: braces around other text (`{"a":1}`) are literal. */
const PLACEHOLDER = /\{([a-z]+)\}/g;
const TENANT = /^[a-z0-9-]*$/;
const KEEP = /[A-Za-z0-9_@.-]/;

/** The variables a template uses; an unknown `{word}` is a config error naming `path`. */
export function templateVariables(template: string, path: string): Set<TemplateVariable> {
  const used = new Set<TemplateVariable>();
  for (const m of template.matchAll(PLACEHOLDER)) {
    const name = m[1] as TemplateVariable;
    if (!TEMPLATE_VARIABLES.includes(name)) {
      throw new StdioConfigError(path, `unknown template variable {${m[1]}}; use {tenant}, {sub} or {session}`);
    }
    used.add(name);
  }
  return used;
}

/** Encodes a subject or session id so it is one safe path segment (see the file comment). */
export function encodeTemplateValue(value: string): string {
  let out = '';
  for (const ch of value) {
    if (KEEP.test(ch)) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, 'utf8')) out += `~${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Checks and encodes the raw identity once per session. Throws GW_ERR_INVALID_TENANT when refused. */
export function templateValues(raw: { tenant: string; sub: string; session: string }): TemplateValues {
  if (!TENANT.test(raw.tenant)) {
    throw new StdioUpstreamError('GW_ERR_INVALID_TENANT', 'the tenant id must match ^[a-z0-9-]*$');
  }
  return { tenant: raw.tenant, sub: encodeTemplateValue(raw.sub), session: encodeTemplateValue(raw.session) };
}

/**
 * Fills a template. Every `/`- or `\`-separated segment that contained a placeholder must not render to
 * `.` or `..`, so a value can never climb out of the folder the template names.
 */
export function renderTemplate(template: string, values: TemplateValues): string {
  return template
    .split(/([/\\])/)
    .map((segment) => {
      if (!segment.includes('{')) return segment;
      const rendered = segment.replace(PLACEHOLDER, (whole, name: string) =>
        name in values ? values[name as TemplateVariable] : whole,
      );
      if (rendered !== segment && (rendered === '.' || rendered === '..')) {
        throw new StdioUpstreamError('GW_ERR_UNSAFE_TEMPLATE_VALUE', `a template value would make the path segment "${rendered}"`);
      }
      return rendered;
    })
    .join('');
}

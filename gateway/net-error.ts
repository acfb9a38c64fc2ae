/**
 * A network error in words an operator can act on. Node reports a failed connection to a name with both
 * an IPv4 and an IPv6 address (`localhost` on most systems) as an AggregateError whose own message is
 * empty and whose code may be missing: the causes are in `errors`. Logged as it was, the line said
 * nothing; this takes the code and messages from the causes.
 */
export interface NetErrorDescription {
  /** e.g. `ECONNREFUSED`, `ENOTFOUND`; undefined when no cause has one. */
  code?: string;
  /** Never empty. */
  message: string;
}

export function describeNetError(err: unknown): NetErrorDescription {
  const e = err as (NodeJS.ErrnoException & { errors?: unknown[] }) | undefined;
  if (!e || typeof e !== 'object') return { message: String(err) };
  const causes = Array.isArray(e.errors) ? (e.errors as NodeJS.ErrnoException[]) : [];
  const code = e.code ?? causes.find((c) => typeof c?.code === 'string')?.code;
  const messages = e.message ? [e.message] : causes.map((c) => c?.message).filter((m): m is string => !!m);
  const message = messages.length > 0 ? [...new Set(messages)].join('; ') : code ?? e.name ?? 'unknown error';
  return code !== undefined ? { code, message } : { message };
}

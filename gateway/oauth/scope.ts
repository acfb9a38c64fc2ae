/**
 * RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. Its own module, free of
 * dependencies, so the config schema can use it without loading the password hasher (users-schema.ts).
 */
export const SCOPE_PATTERN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

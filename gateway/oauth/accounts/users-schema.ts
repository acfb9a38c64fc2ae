/**
 * The users file's format, shared by the gateway (which reads it) and `npm run users` (which writes it):
 *
 *   users:
 *     alice:
 *       password: $argon2id$v=19$m=19456,t=2,p=1$…   # a hash, written by the CLI; never plaintext
 *       tenant: acme
 *       scopes: [mcp:tools]
 *       name: Alice Example                            # optional, shown on the pages
 */
import { parse } from 'yaml';
import { z } from 'zod';
import { SCOPE_PATTERN } from '../scope.ts';
import { isArgon2Hash } from './password-hash.ts';

/**
 * Usernames are lower case so that `Alice` and `alice` are one account (and one login-guard counter);
 * the login form's input is lower-cased before lookup. Dots, `@`, `+` and `-` allow e-mail addresses.
 */
export const USERNAME_PATTERN = /^[a-z0-9][a-z0-9._@+-]{0,127}$/;
/** The jwt plugin's default `tenantPattern`: a tenant outside it could not use the tokens issued. */
export const TENANT_PATTERN = /^[a-z0-9-]{1,64}$/;
export { SCOPE_PATTERN };

/** How a typed username is looked up: trimmed and lower-cased. */
export function normalizeUsername(input: string): string {
  return input.trim().toLowerCase();
}

export const UserSchema = z.strictObject({
  /** An Argon2 hash (PHC string). Checked in UsersFileSchema so the message can name the user. */
  password: z.string(),
  tenant: z.string().regex(TENANT_PATTERN, `a tenant matches ${TENANT_PATTERN.source}`),
  /** Scopes this user may be granted. Default none. */
  scopes: z.array(z.string().regex(SCOPE_PATTERN, 'a scope is printable ASCII without spaces, quotes or backslashes')).default([]),
  /** Display name for the pages. */
  name: z.string().trim().min(1).max(200).optional(),
});

export type UserEntry = z.infer<typeof UserSchema>;

export const UsersFileSchema = z
  .preprocess(
    // An empty file parses as null: that is a file without users, not an error.
    (v) => (v === null || v === undefined ? {} : v),
    z.strictObject({
      users: z.preprocess(
        (v) => (v === null ? {} : v),
        // Usernames are checked below: a refused record key would hide the problems of its value.
        z.record(z.string(), UserSchema),
      ).default({}),
    }),
  )
  .superRefine((file, ctx) => {
    for (const [username, user] of Object.entries(file.users)) {
      if (!USERNAME_PATTERN.test(username)) {
        ctx.addIssue({
          code: 'custom',
          path: ['users', username],
          message: `a username is lower case and matches ${USERNAME_PATTERN.source}`,
        });
      }
      if (isArgon2Hash(user.password)) continue;
      ctx.addIssue({
        code: 'custom',
        path: ['users', username, 'password'],
        // Never echo the value: it may be the user's real password.
        message: `user "${username}" has a password that is not an Argon2 hash; plaintext passwords are refused. ` +
          `Set it with: npm run users -- passwd ${username}`,
      });
    }
  });

export type UsersFile = z.infer<typeof UsersFileSchema>;

function check(text: string): { data: UsersFile; problems?: undefined } | { problems: string[] } {
  let raw: unknown;
  try {
    // Not yaml's pretty errors: they quote the offending line, which may hold a password someone typed
    // in by hand, and this message goes to the gateway's log.
    raw = parse(text, { prettyErrors: false });
  } catch (err) {
    const pos = (err as { pos?: [number, number] }).pos;
    const where = pos ? ` (line ${text.slice(0, pos[0]).split('\n').length})` : '';
    return { problems: [`not valid YAML${where}: ${(err as Error).message}`] };
  }
  const parsed = UsersFileSchema.safeParse(raw);
  if (parsed.success) return { data: parsed.data };
  return { problems: parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`) };
}

/**
 * Every problem of a users file's text, one `<path>: <problem>` line each; [] when it is valid.
 * The CLI compares the lists before and after an edit, so it never makes a file worse.
 */
export function usersFileProblems(text: string): string[] {
  return check(text).problems ?? [];
}

/** Parses and validates the text of a users file; throws an Error naming `source` and every problem. */
export function parseUsersFile(text: string, source: string): UsersFile {
  const result = check(text);
  if (result.problems) throw new Error(`${source}: ${result.problems.join('; ')}`);
  return result.data;
}

/**
 * The users file (loading, validation, reload, verification) and `npm run users` as an operator runs it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { hashPassword, verifyPassword } from '../../gateway/oauth/accounts/password-hash.ts';
import { loadPasswordAccounts } from '../../gateway/oauth/accounts/users-file.ts';
import { waitFor } from '../helpers/wait.ts';

const CLI = fileURLToPath(new URL('../../gateway/cli/users.ts', import.meta.url));

let dir: string;
let aliceHash: string;

/** A logger whose lines the test can read. */
function recordingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

function cli(args: string[], stdin?: string, cwd = dir): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { cwd, env: { PATH: process.env.PATH } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin ?? '');
  });
}

const usersYaml = (hash: string, extra = '') => `users:\n  alice:\n    password: "${hash}"\n    tenant: acme\n    scopes: [mcp:tools]\n    name: Alice Example\n${extra}`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-users-'));
  aliceHash = await hashPassword('correct horse battery');
});
after(async () => { await rm(dir, { recursive: true, force: true }); });

describe('password hashing', () => {
  it('hashes with Argon2id and verifies only the right password', async () => {
    assert.match(aliceHash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.equal(await verifyPassword(aliceHash, 'correct horse battery'), true);
    assert.equal(await verifyPassword(aliceHash, 'correct horse batterY'), false);
    assert.equal(await verifyPassword('not a hash', 'x'), false, 'a malformed hash is a failure, not a throw');
    assert.equal(await verifyPassword(aliceHash, 'x'.repeat(5000)), false);
  });
});

describe('users file', () => {
  it('verifies a user (case-insensitive username) and returns the account; wrong password and unknown user get undefined', async () => {
    const file = path.join(dir, 'a.yaml');
    await writeFile(file, usersYaml(aliceHash), { mode: 0o600 });
    const accounts = await loadPasswordAccounts(file, pino({ level: 'silent' }), { watch: false });
    try {
      assert.equal(accounts.size, 1);
      assert.deepEqual(await accounts.verify(' Alice ', 'correct horse battery'), {
        subject: 'alice', tenant: 'acme', scopes: ['mcp:tools'], displayName: 'Alice Example', source: 'users-file',
      });
      assert.equal(await accounts.verify('alice', 'wrong'), undefined);
      assert.equal(await accounts.verify('mallory', 'correct horse battery'), undefined);
      assert.equal(await accounts.verify('<script>', ''), undefined);
    } finally {
      await accounts.close();
    }
  });

  it('refuses a plaintext password, naming the user and not the password', async () => {
    const file = path.join(dir, 'plain.yaml');
    await writeFile(file, 'users:\n  bob:\n    password: hunter2hunter2\n    tenant: acme\n', { mode: 0o600 });
    await assert.rejects(loadPasswordAccounts(file, pino({ level: 'silent' }), { watch: false }), (err: Error) => {
      assert.match(err.message, /user "bob" has a password that is not an Argon2 hash/);
      assert.match(err.message, /npm run users -- passwd bob/);
      assert.doesNotMatch(err.message, /hunter2/);
      return true;
    });
  });

  it('refuses invalid tenants, usernames and unknown keys, with their paths', async () => {
    const file = path.join(dir, 'bad.yaml');
    await writeFile(file, `users:\n  Bob:\n    password: "${aliceHash}"\n    tenant: Acme_Corp\n    role: admin\n`, { mode: 0o600 });
    await assert.rejects(loadPasswordAccounts(file, pino({ level: 'silent' }), { watch: false }), (err: Error) => {
      assert.match(err.message, /users\.Bob: a username is lower case/);
      assert.match(err.message, /users\.Bob\.tenant: a tenant matches/);
      assert.match(err.message, /role/);
      return true;
    });
    await assert.rejects(loadPasswordAccounts(path.join(dir, 'missing.yaml'), pino({ level: 'silent' })), /no such file; create it with: npm run users -- add/);
  });

  it('with allowMissing, a file not written yet is no accounts and a warning, then picked up once written', async () => {
    const file = path.join(dir, 'later', 'users.yaml');
    await mkdir(path.dirname(file));
    const { log, lines } = recordingLog();
    const accounts = await loadPasswordAccounts(file, log, { allowMissing: true, debounceMs: 20 });
    try {
      assert.equal(accounts.size, 0);
      assert.ok(lines.some((l) => l.level === 40 && /npm run users -- add/.test(String(l.msg))), JSON.stringify(lines));
      assert.equal(await accounts.verify('alice', 'correct horse battery'), undefined);
      await writeFile(file, usersYaml(aliceHash), { mode: 0o600 });
      await waitFor(async () => (await accounts.verify('alice', 'correct horse battery'))?.tenant === 'acme', 'the new file is read');
    } finally {
      await accounts.close();
    }
  });

  it('warns when others may read the file', async () => {
    const file = path.join(dir, 'shared.yaml');
    await writeFile(file, usersYaml(aliceHash));
    await chmod(file, 0o644);
    const { log, lines } = recordingLog();
    const accounts = await loadPasswordAccounts(file, log, { watch: false });
    await accounts.close();
    assert.ok(lines.some((l) => l.level === 40 && /chmod 600/.test(String(l.msg)) && l.mode === '644'), JSON.stringify(lines));
  });

  it('reloads when the file is replaced, and keeps the previous accounts when the new file is broken', async () => {
    const sub = path.join(dir, 'reload');
    await mkdir(sub);
    const file = path.join(sub, 'users.yaml');
    await writeFile(file, usersYaml(aliceHash), { mode: 0o600 });
    const { log, lines } = recordingLog();
    const accounts = await loadPasswordAccounts(file, log, { debounceMs: 50 });
    try {
      const carolHash = await hashPassword('carol password');
      // Saved the way editors save: a new file renamed over the old one.
      await writeFile(path.join(sub, 'next.tmp'), usersYaml(aliceHash, `  carol:\n    password: "${carolHash}"\n    tenant: beta\n`), { mode: 0o600 });
      await rename(path.join(sub, 'next.tmp'), file);
      await waitFor(async () => (await accounts.verify('carol', 'carol password'))?.tenant === 'beta', 'carol can sign in');
      assert.equal(accounts.size, 2);

      await writeFile(file, 'users:\n  carol:\n    password: carol password\n    tenant: beta\n');
      await waitFor(() => lines.some((l) => l.level === 50 && /previous accounts stay in force/.test(String(l.msg))), 'the refusal is logged');
      const refusal = lines.find((l) => l.level === 50)!;
      assert.match(String(refusal.err), /user "carol" has a password that is not an Argon2 hash/);
      assert.equal(accounts.size, 2);
      assert.equal((await accounts.verify('carol', 'carol password'))?.tenant, 'beta', 'the last good file stays in force');
      assert.equal((await accounts.verify('alice', 'correct horse battery'))?.tenant, 'acme');
    } finally {
      await accounts.close();
    }
  });
});

describe('users CLI', () => {
  it('add, passwd, list and remove, with the file kept at mode 0600 and no hash ever printed', async () => {
    const file = path.join(dir, 'cli', 'users.yaml');
    let r = await cli(['add', 'Dana', '--tenant', 'acme', '--scope', 'mcp:tools', '--scope', 'mcp:read', '--name', 'Dana D', '--password-stdin', '--file', file], 'first password\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const text = await readFile(file, 'utf8');
    assert.match(text, /dana:\n {4}password: \$argon2id\$/);
    assert.doesNotMatch(text, /first password/);

    const accounts = await loadPasswordAccounts(file, pino({ level: 'silent' }), { watch: false });
    assert.deepEqual(await accounts.verify('dana', 'first password'), {
      subject: 'dana', tenant: 'acme', scopes: ['mcp:tools', 'mcp:read'], displayName: 'Dana D', source: 'users-file',
    });

    r = await cli(['add', 'dana', '--tenant', 'acme', '--password-stdin', '--file', file], 'another password');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already has a user "dana"/);

    r = await cli(['passwd', 'dana', '--password-stdin', '--file', file], 'second password');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    await accounts.reload();
    assert.equal(await accounts.verify('dana', 'first password'), undefined);
    assert.equal((await accounts.verify('dana', 'second password'))?.tenant, 'acme');
    await accounts.close();

    r = await cli(['passwd', 'dana', '--password-stdin', '--file', file], 'short');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /shorter than 8 characters; nothing was changed/);

    r = await cli(['list', '--file', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'dana  tenant=acme  scopes=mcp:tools,mcp:read  name="Dana D"\n');
    assert.doesNotMatch(r.stdout + r.stderr, /argon2/);

    r = await cli(['remove', 'dana', '--file', file]);
    assert.equal(r.code, 0, r.stderr);
    r = await cli(['list', '--file', file]);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /has no users/);
    r = await cli(['remove', 'dana', '--file', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /has no user "dana"/);
  });

  it('never takes a password as an argument, and needs a terminal or --password-stdin', async () => {
    let r = await cli(['add', 'erin', '--tenant', 'acme', '--password', 'hunter2hunter2']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /never taken as an argument/);
    r = await cli(['add', 'erin', '--tenant', 'acme', '--file', path.join(dir, 'x.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no terminal to ask for the password on: pipe it in with --password-stdin/);
    r = await cli(['add', 'erin', '--tenant', 'Acme', '--password-stdin'], 'long enough');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--tenant must match/);
    r = await cli(['frobnicate']);
    assert.equal(r.code, 2);
  });

  it("defaults to the config's authorization.accounts.usersFile, else users.yaml next to the config", async () => {
    const cwd = path.join(dir, 'cfg');
    await mkdir(path.join(cwd, 'conf'), { recursive: true });
    await writeFile(path.join(cwd, 'gateway.yaml'), 'listeners: []\n');
    let r = await cli(['add', 'fay', '--tenant', 'acme', '--password-stdin'], 'fay password', cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await readFile(path.join(cwd, 'users.yaml'), 'utf8'), /fay:/);

    await writeFile(path.join(cwd, 'conf', 'gw.yaml'), 'authorization:\n  accounts:\n    usersFile: ${USERS_DIR:-people}/team.yaml\n');
    r = await cli(['add', 'gus', '--tenant', 'acme', '--password-stdin', '--config', 'conf/gw.yaml'], 'gus password', cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.match(await readFile(path.join(cwd, 'conf', 'people', 'team.yaml'), 'utf8'), /gus:/);
  });

  it('edits a file with a plaintext password of another user without making it worse, and passwd fixes it', async () => {
    const file = path.join(dir, 'legacy.yaml');
    await writeFile(file, `# our team\nusers:\n  hal:\n    password: plaintext!\n    tenant: acme\n`, { mode: 0o600 });
    let r = await cli(['add', 'ida', '--tenant', 'acme', '--password-stdin', '--file', file], 'ida password');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /still has problems/);
    r = await cli(['passwd', 'hal', '--password-stdin', '--file', file], 'hal password');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /still has problems/);
    const text = await readFile(file, 'utf8');
    assert.match(text, /^# our team\n/, 'comments survive');
    const accounts = await loadPasswordAccounts(file, pino({ level: 'silent' }), { watch: false });
    assert.equal((await accounts.verify('hal', 'hal password'))?.subject, 'hal');
    await accounts.close();
  });
});

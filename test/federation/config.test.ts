/**
 * The `federation:` upstream in gateway.yaml: what it parses to (the FederationConfig the federation is
 * built from), and every mistake it refuses, each reported at its path with a message that says why.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../config/load.ts';
import type { FederationUpstreamConfig } from '../../config/schema.ts';

/** A gateway.yaml with the three upstreams, `upstreams` lines added, routed at `route`. */
function yaml(upstreams: string, route = 'workspace'): string {
  return `
listeners: [{ name: main, port: 0 }]
upstreams:
  everything: { url: http://127.0.0.1:3010/mcp }
  memory: { stdio: { command: mcp-server-memory, poolKey: '{tenant}' } }
  graphs: { url: http://127.0.0.1:3020/mcp, headers: { Authorization: "Bearer \${FALKORDB_KEY}" } }
${upstreams}
routes: [{ listener: main, path: /mcp, upstream: ${route} }]
`;
}

const load = (text: string) => parseConfig(text, { env: { FALKORDB_KEY: 'k' }, source: 'gateway.yaml', dir: '/tmp' });

function federationOf(text: string, name = 'workspace'): FederationUpstreamConfig['federation'] {
  const upstream = load(text).config.upstreams[name];
  assert.ok('federation' in upstream, `${name} is a federation`);
  return upstream.federation;
}

function problemsOf(text: string): string[] {
  try {
    load(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${(err as Error).stack}`);
    return err.problems;
  }
  assert.fail('the config was accepted; it must be refused');
}

describe('the federation upstream', () => {
  it("parses the issue's example into the FederationConfig the federation is built from", () => {
    const fed = federationOf(yaml(`
  workspace:
    federation:
      prefix: on-collision
      separator: "__"
      listTimeout: 5s
      listTtl: 0
      listChangedDebounce: 200ms
      serverInfo: { name: workspace, version: "1.0.0", title: "Team workspace" }
      instructions: "Tools of the team."
      members:
        everything: {}
        memory: { prefix: mem }
        graphs: { tenants: [acme, "lab-*"], scopes: [graphs] }
`));
    assert.deepStrictEqual(fed, {
      members: {
        everything: { prefix: 'everything' },
        memory: { prefix: 'mem' },
        graphs: { prefix: 'graphs', tenants: ['acme', 'lab-*'], scopes: ['graphs'] },
      },
      prefix: 'on-collision',
      separator: '__',
      listTimeoutMs: 5_000,
      listTtlMs: 0,
      listChangedDebounceMs: 200,
      serverInfo: { name: 'workspace', version: '1.0.0', title: 'Team workspace' },
      instructions: 'Tools of the team.',
    });
    assert.deepEqual(Object.keys(fed.members), ['everything', 'memory', 'graphs'], 'members keep the order written');
  });

  it('fills every default: a member written as null or {} gets its name as prefix and no restriction', () => {
    const fed = federationOf(yaml(`
  workspace:
    federation:
      members:
        graphs:
        everything: {}
`));
    assert.deepStrictEqual(fed, {
      members: { graphs: { prefix: 'graphs' }, everything: { prefix: 'everything' } },
      prefix: 'on-collision',
      separator: '__',
      listTimeoutMs: 5_000,
      listTtlMs: 0,
      listChangedDebounceMs: 200,
    });
  });

  it('takes durations in every unit, and a serverInfo with only some fields', () => {
    const fed = federationOf(yaml(`
  workspace:
    federation: { prefix: always, separator: ".", listTimeout: 1500, listTtl: 2m, listChangedDebounce: 0, serverInfo: { title: Team }, members: { memory: {} } }
`));
    assert.equal(fed.prefix, 'always');
    assert.equal(fed.separator, '.');
    assert.equal(fed.listTimeoutMs, 1_500);
    assert.equal(fed.listTtlMs, 120_000);
    assert.equal(fed.listChangedDebounceMs, 0);
    assert.deepStrictEqual(fed.serverInfo, { title: 'Team' });
  });

  it('refuses malformed fields, each at its path', () => {
    const problems = problemsOf(yaml(`
  workspace:
    federation:
      prefix: sometimes
      separator: " / "
      listTimeout: 0
      listTtl: soon
      serverInfo: { name: w, vendor: x }
      color: blue
      members:
        everything: { prefix: "a b" }
        memory: { tenants: [], scopes: ["has space"] }
        graphs: { tenants: ["acme lab"], priority: 1 }
`));
    const at = (path: string) => problems.find((p) => p.startsWith(`upstreams.workspace.federation.${path}: `));
    assert.match(at('prefix') ?? '', /expected one of "always"\|"on-collision"\|"never"/);
    assert.match(at('separator') ?? '', /1 to 8 letters, digits/);
    assert.match(at('listTimeout') ?? '', /above 0/);
    assert.match(at('listTtl') ?? '', /expected a duration/);
    assert.match(at('serverInfo.vendor') ?? '', /unknown key/);
    assert.match(at('color') ?? '', /unknown key/);
    assert.match(at('members.everything.prefix') ?? '', /1 to 64 letters, digits/);
    assert.match(at('members.memory.tenants') ?? '', /at least one tenant, or leave "tenants" out/);
    assert.match(at('members.memory.scopes[0]') ?? '', /printable ASCII without spaces/);
    assert.match(at('members.graphs.tenants[0]') ?? '', /"\*" \(any characters\) and "\?" \(one character\), without spaces/);
    assert.match(at('members.graphs.priority') ?? '', /unknown key/);
  });

  it('refuses a federation without members', () => {
    assert.deepEqual(problemsOf(yaml('  workspace: { federation: { members: {} } }')), [
      'upstreams.workspace.federation.members: list at least one member (an upstream name)',
    ]);
  });

  it('refuses a member that names no upstream, itself, or another federation', () => {
    const problems = problemsOf(yaml(`
  other: { federation: { members: { memory: {} } } }
  workspace:
    federation:
      members: { everything: {}, falkor: {}, workspace: {}, other: {} }
`));
    assert.deepEqual(problems.sort(), [
      'upstreams.workspace.federation.members.falkor: no upstream named "falkor" (have: everything, memory, graphs, other, workspace)',
      'upstreams.workspace.federation.members.other: "other" is a federation itself; federations do not nest, list its members here instead',
      'upstreams.workspace.federation.members.workspace: a federation cannot be its own member',
    ]);
  });

  it('refuses two members with one prefix, saying when the prefix is a default', () => {
    const problems = problemsOf(yaml(`
  workspace:
    federation:
      members: { memory: {}, graphs: { prefix: memory } }
`));
    assert.deepEqual(problems, [
      `upstreams.workspace.federation.members.graphs.prefix: prefix "memory" is also member "memory"'s prefix; give each member its own`,
    ]);
    const defaulted = problemsOf(yaml(`
  workspace:
    federation:
      members: { graphs: { prefix: memory }, memory: {} }
`));
    assert.match(defaulted[0], /^upstreams\.workspace\.federation\.members\.memory\.prefix: prefix "memory" \(its default: the member's name\) is also member "graphs"'s prefix/);
  });

  it('refuses prefixes where one with the separator begins the other, and says which name would be ambiguous', () => {
    const problems = problemsOf(yaml(`
  workspace:
    federation:
      members: { everything: { prefix: a }, memory: { prefix: a__b } }
`));
    assert.deepEqual(problems, [
      'upstreams.workspace.federation.members.memory.prefix: prefix "a__b" overlaps member "everything"\'s prefix "a": ' +
        '"a__b__x" could mean "x" of member "memory" or "b__x" of member "everything"; choose prefixes where neither, followed by "__", begins the other',
    ]);
    // The separator decides: with "-" the same prefixes are told apart ("a-…" never begins "a__b-…").
    assert.doesNotThrow(() => load(yaml(`
  workspace:
    federation: { separator: "-", members: { everything: { prefix: a }, memory: { prefix: a__b } } }
`)));
    // A prefix ending with part of the separator overlaps too: "a_" + "__" begins "a" + "__" + "_x".
    assert.match(problemsOf(yaml(`
  workspace:
    federation: { members: { everything: { prefix: a_ }, memory: { prefix: a } } }
`))[0], /members\.memory\.prefix: prefix "a" overlaps member "everything"'s prefix "a_"/);
  });

  it('with prefix: never, ignores prefixes written (even equal ones)', () => {
    const fed = federationOf(yaml(`
  workspace:
    federation: { prefix: never, members: { everything: { prefix: x }, memory: { prefix: x } } }
`));
    assert.equal(fed.prefix, 'never');
    assert.deepStrictEqual(fed.members, { everything: { prefix: 'x' }, memory: { prefix: 'x' } });
  });

  it('lets a route name a member directly, next to the federation', () => {
    const loaded = load(`
listeners: [{ name: main, port: 0 }]
upstreams:
  everything: { url: http://127.0.0.1:3010/mcp }
  workspace: { federation: { members: { everything: } } }
routes:
  - { listener: main, path: /mcp, upstream: workspace }
  - { listener: main, path: /everything, upstream: everything }
`);
    assert.deepEqual(Object.keys(loaded.config.upstreams), ['everything', 'workspace']);
  });
});

describe('choosing the upstream kind by its key', () => {
  const KINDS = '"url" (an HTTP MCP server), "stdio" (a command) or "federation" (several upstreams behind one endpoint)';

  it('names all three kinds when none or several are given', () => {
    const problems = problemsOf(yaml(`
  both: { url: http://127.0.0.1:1/mcp, federation: { members: { memory: } } }
  three: { url: http://127.0.0.1:1/mcp, stdio: { command: node }, federation: { members: { memory: } } }
  none: { headers: {} }
  scalar: hello
`));
    assert.deepEqual(problems, [
      `upstreams.both: give exactly one of ${KINDS}; not "url" and "federation" together`,
      `upstreams.three: give exactly one of ${KINDS}; not "url" and "stdio" and "federation" together`,
      `upstreams.none: give one of ${KINDS}`,
      `upstreams.scalar: expected an object: give one of ${KINDS}`,
    ]);
  });

  it('says which kinds have a key written next to "federation", or next to another kind', () => {
    const problems = problemsOf(yaml(`
  workspace:
    federation: { members: { memory: } }
    era: "2025"
    headers: { x: y }
    members: {}
  web: { url: http://127.0.0.1:1/mcp, stdio_: 1 }
`));
    assert.deepEqual(problems.sort(), [
      'upstreams.web.stdio_: unknown key',
      'upstreams.workspace.era: unknown key (only HTTP upstreams, with "url", and stdio upstreams have it)',
      'upstreams.workspace.headers: unknown key (only HTTP upstreams, with "url", have it)',
      'upstreams.workspace.members: unknown key',
    ]);
  });
});

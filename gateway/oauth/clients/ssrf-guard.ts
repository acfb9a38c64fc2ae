/**
 * The SSRF guard for fetching Client ID Metadata Documents.
 *
 * Anyone who can start a sign-in chooses the `client_id` URL, so without a guard the gateway would GET
 * any address its own network can reach: a cloud metadata service (169.254.169.254), an admin port on
 * 127.0.0.1, a database on 10.x. The guard resolves the host once, refuses it if any of its addresses
 * is not public unicast, and then connects to exactly the address it vetted (a `lookup` that answers
 * only that address), so a DNS server that answers a public address to the check and 127.0.0.1 to the
 * connection (DNS rebinding) gains nothing.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import { BlockList, isIP } from 'node:net';

/** Ranges never fetched unless `allowPrivateNetworks`; each with the words an error message uses. */
const IPV4_RANGES: Array<[string, number, string]> = [
  ['0.0.0.0', 8, 'an unspecified ("this network") address'],
  ['10.0.0.0', 8, 'a private (RFC 1918) address'],
  ['100.64.0.0', 10, 'a carrier-grade NAT (RFC 6598) address'],
  ['127.0.0.0', 8, 'a loopback address'],
  ['169.254.0.0', 16, 'a link-local address (cloud metadata services live here)'],
  ['172.16.0.0', 12, 'a private (RFC 1918) address'],
  ['192.0.0.0', 24, 'an IETF protocol assignment address'],
  ['192.0.2.0', 24, 'a documentation address'],
  ['192.168.0.0', 16, 'a private (RFC 1918) address'],
  ['198.18.0.0', 15, 'a benchmarking address'],
  ['198.51.100.0', 24, 'a documentation address'],
  ['203.0.113.0', 24, 'a documentation address'],
  ['224.0.0.0', 4, 'a multicast address'],
  ['240.0.0.0', 4, 'a reserved or broadcast address'],
];

const IPV6_RANGES: Array<[string, number, string]> = [
  ['::1', 128, 'a loopback address'],
  ['::', 128, 'an unspecified address'],
  ['::', 96, 'an IPv4-compatible address (a deprecated form)'],
  ['100::', 64, 'a discard-only address'],
  ['2001:db8::', 32, 'a documentation address'],
  ['fc00::', 7, 'a unique local (private) address'],
  ['fe80::', 10, 'a link-local address'],
  ['fec0::', 10, 'a site-local address'],
  ['ff00::', 8, 'a multicast address'],
];

/** The two 16-bit groups of an IPv4 address, for writing it inside an IPv6 prefix. */
function ipv4Hextets(v4: string): string {
  const [a, b, c, d] = v4.split('.').map(Number);
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/**
 * One BlockList per range label. IPv4-mapped addresses (::ffff:127.0.0.1) are checked against the IPv4
 * rules by BlockList itself; NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address too, so each
 * IPv4 range is also added in those two spellings.
 */
const RULES: Array<{ list: BlockList; reason: string }> = [];
for (const [net, prefix, reason] of IPV4_RANGES) {
  const list = new BlockList();
  list.addSubnet(net, prefix, 'ipv4');
  list.addSubnet(`64:ff9b::${ipv4Hextets(net)}`, 96 + prefix, 'ipv6');
  list.addSubnet(`2002:${ipv4Hextets(net)}::`, 16 + prefix, 'ipv6');
  RULES.push({ list, reason });
}
for (const [net, prefix, reason] of IPV6_RANGES) {
  const list = new BlockList();
  list.addSubnet(net, prefix, 'ipv6');
  RULES.push({ list, reason });
}

/** What kind of non-public address this is, or undefined for a public unicast address. */
export function blockedAddressReason(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return 'not an IP address';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const rule of RULES) if (rule.list.check(address, type)) return rule.reason;
  return undefined;
}

export interface VettedAddress {
  address: string;
  family: 4 | 6;
}

/** A refusal by the guard: the message says which address and why, for the OAuth error description. */
export class SsrfRefusal extends Error {}

export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' });

export interface GuardOptions {
  allowPrivateNetworks: boolean;
  /** For tests: answers a host name's addresses instead of the system resolver. */
  resolve?: Resolver;
}

/**
 * Resolves `hostname` (as URL.hostname spells it: IPv6 in brackets) and returns the address to connect
 * to. Throws SsrfRefusal when any address is not public (an attacker's DNS may mix a public address
 * with a private one and hope the connection picks the private one) unless private networks are
 * allowed; throws the resolver's error when the name does not resolve.
 */
export async function vetHost(hostname: string, opts: GuardOptions): Promise<VettedAddress> {
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  const literal = isIP(bare);
  const addresses = literal
    ? [{ address: bare, family: literal }]
    : await (opts.resolve ?? systemResolver)(bare);
  if (addresses.length === 0) throw new SsrfRefusal(`${bare} has no addresses`);
  if (!opts.allowPrivateNetworks) {
    for (const { address } of addresses) {
      const reason = blockedAddressReason(address);
      if (reason) {
        const what = literal ? address : `${bare} resolves to ${address},`;
        throw new SsrfRefusal(`${what} ${literal ? 'is ' : ''}${reason}, which this gateway does not fetch from (allowPrivateNetworks is off)`);
      }
    }
  }
  const first = addresses[0];
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

/**
 * A `lookup` for http.request/net.connect that answers only the vetted address, whatever the name:
 * the connection goes where the check looked. Handles both callback shapes (`all: true` is what Node
 * asks for when it races address families).
 */
export function pinnedLookup(vetted: VettedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) (callback as (e: null, a: VettedAddress[]) => void)(null, [vetted]);
    else callback(null, vetted.address, vetted.family);
  };
}

/**
 * Stage 5's era decision: does this exchange go to the upstream as it is, or through a translator?
 * Only when the client's era and the upstream's both are known and differ. Translators are built per
 * route on first use and keep their in-memory state (parked requests, listen streams) for its life.
 */
import { PRINCIPAL, PROTOCOL, type Principal } from '../contract.ts';
import type { ExchangeRun } from '../proxy.ts';
import type { CompiledRoute } from '../runtime.ts';
import { ownerOf, SEAL_KIND } from '../session-seal.ts';
import { protocolFromMessage } from './detect.ts';
import { createToLegacyTranslator } from './to-legacy/index.ts';
import { createToModernTranslator } from './to-modern/index.ts';
import { readSession } from './to-modern/session.ts';
import type { StateSealer, Translator } from './translation.ts';
import { eraOfVersion, HEADER, META, type Era } from './versions.ts';

const translators = new WeakMap<CompiledRoute, Partial<Record<Era, Translator>>>();

/**
 * The translator for this exchange, or undefined when it goes to the upstream untranslated. A promise
 * only while the upstream's era is being probed: the common case costs no await.
 */
export function translatorFor(run: ExchangeRun): Translator | undefined | Promise<Translator | undefined> {
  const { upstream, x } = run;
  const era = x.get(PROTOCOL)?.era;
  if (era === '2026') {
    const known = upstream.era.known();
    if (known) return known === '2025' ? translator(run, '2025') : undefined;
    const principal = x.get(PRINCIPAL);
    return upstream.era.learn(upstream.port, run.route.upstreamPath(new URL(run.route.info.path, 'http://x')), upstream.requestHeaders(principal), principal)
      .then((learned) => (learned === '2025' ? translator(run, '2025') : undefined));
  }
  // A request in the 2026 envelope naming a version no era knows (a newer one, a typo) is answered
  // by the translator in front of a 2025 upstream, as a 2026 server would (-32022 and its versions),
  // rather than by the upstream as a request without a session.
  if (era === undefined && upstream.era.known() === '2025' && unknownModernVersion(run)) return translator(run, '2025');
  // 2025 clients are translated only for an upstream pinned to 2026 (see upstream-era.ts).
  if (upstream.era.pinned() !== '2026') return undefined;
  // A 2025 session stays with whoever opened it: a translator-minted id, or the upstream's own.
  const session = x.upstreamHeaders[HEADER.session];
  if (typeof session === 'string') return readSession(session) ? translator(run, '2026') : undefined;
  return clientEraOf(run) === '2025' ? translator(run, '2026') : undefined;
}

/** The route's translator for an upstream of this era, built on first use. */
function translator(run: ExchangeRun, upstreamEra: Era): Translator {
  let byEra = translators.get(run.route);
  if (!byEra) translators.set(run.route, (byEra = {}));
  return (byEra[upstreamEra] ??= build(run, upstreamEra));
}

/** Ends a route's translators (reload, shutdown). */
export function closeTranslators(route: CompiledRoute): void {
  const byEra = translators.get(route);
  if (!byEra) return;
  for (const t of Object.values(byEra)) t?.close();
  translators.delete(route);
}

function build(run: ExchangeRun, upstreamEra: Era): Translator {
  const deps = { upstream: run.upstream.port, state: stateSealer(run), log: run.env.log, route: run.route.info.name, tools: run.upstream.toolHeaders };
  return upstreamEra === '2025' ? createToLegacyTranslator(deps) : createToModernTranslator(deps);
}

/** Translators' own opaque state (parked requests), sealed to the principal and the route. */
function stateSealer(run: ExchangeRun): StateSealer {
  const { sealer } = run.env;
  const binding = `${run.route.info.name}\0translator`;
  return {
    seal: (payload: string, p: Principal | undefined) => sealer.seal(SEAL_KIND.requestState, payload, ownerOf(p), binding),
    open: (sealed: string, p: Principal | undefined) => {
      const opened = sealer.open(SEAL_KIND.requestState, sealed, ownerOf(p), binding);
      return opened?.ownerMatches ? opened.payload : undefined;
    },
  };
}

/** A POST's era when neither its headers nor a decoding stage told: its lone message decides. */
function clientEraOf(run: ExchangeRun): Era | undefined {
  if (run.req.method !== 'POST' || !run.body || run.body.length > 1_000_000) return undefined;
  try {
    const value = JSON.parse(run.body.toString('utf8')) as unknown;
    if (Array.isArray(value)) return '2025';
    const info = protocolFromMessage({}, value);
    if (info.era) run.x.set(PROTOCOL, info);
    return info.era;
  } catch {
    return undefined;
  }
}

/** A POST without a session whose lone request names, in its 2026 `_meta`, a version of no known era. */
function unknownModernVersion(run: ExchangeRun): boolean {
  if (run.req.method !== 'POST' || !run.body || run.body.length > 1_000_000 || run.x.upstreamHeaders[HEADER.session] !== undefined || run.legacySessionId) return false;
  // (A 2025 request without a version header, an `initialize` say, is not parsed just to find out.)
  if (!run.body.includes(META.protocolVersion)) return false;
  try {
    const value = JSON.parse(run.body.toString('utf8')) as { params?: { _meta?: Record<string, unknown> } } | null;
    const version = value && !Array.isArray(value) ? value.params?._meta?.[META.protocolVersion] : undefined;
    return typeof version === 'string' && eraOfVersion(version) === undefined;
  } catch {
    return false;
  }
}

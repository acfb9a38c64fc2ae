/**
 * Starts OpenTelemetry tracing when gateway.yaml asks for it, and only then loads the SDK: a gateway
 * without `tracing:` imports none of it and pays one `?.` per hook point.
 *
 * Nothing is registered globally (no global tracer provider, propagator or context manager): several
 * gateways may share a process (tests, embedders), and plugin code must not start exporting because
 * the gateway does. Contexts are passed explicitly (spans.ts).
 */
import { readFileSync } from 'node:fs';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import type { TracingConfig } from '../../config/tracing.ts';
import { safeUrl } from '../banner.ts';
import { Tracing } from './spans.ts';

/** Export failures are logged at most this often: a collector that is down must not flood the log. */
const FAILURE_LOG_INTERVAL_MS = 60_000;

export async function startTracing(cfg: TracingConfig | undefined, log: Logger): Promise<Tracing | undefined> {
  if (!cfg?.enabled) return undefined;
  const [api, core, sdk, resources, otlp] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/exporter-trace-otlp-http'),
  ]);
  const version = packageVersion();
  const otlpExporter = new otlp.OTLPTraceExporter({ url: cfg.otlp.endpoint, headers: cfg.otlp.headers, timeoutMillis: cfg.otlp.timeout });
  // Logged without userinfo or query: a vendor's key may ride there.
  const endpoint = safeUrl(cfg.otlp.endpoint);
  let lastFailureLog = 0;
  // The SDK reports failed exports only to OpenTelemetry's own diagnostics logger, which is silent
  // unless registered globally; the operator needs them in the gateway's log.
  const exporter: SpanExporter = {
    export(spans, done) {
      otlpExporter.export(spans, (result) => {
        if (result.code !== core.ExportResultCode.SUCCESS && Date.now() - lastFailureLog > FAILURE_LOG_INTERVAL_MS) {
          lastFailureLog = Date.now();
          log.warn({ endpoint, spans: spans.length, error: result.error?.message }, 'trace export failed; spans were dropped (logged at most once a minute)');
        }
        done(result);
      });
    },
    shutdown: () => otlpExporter.shutdown(),
    forceFlush: () => otlpExporter.forceFlush(),
  };
  const provider = new sdk.TracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': cfg.serviceName, 'service.version': version }),
    // A caller's sampling decision (the traceparent's flag) is followed; new traces are sampled at the ratio.
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(cfg.sampleRatio) }),
    spanProcessors: [new sdk.BatchSpanProcessor({ exporter })],
  });
  log.info({ endpoint, serviceName: cfg.serviceName, sampleRatio: cfg.sampleRatio }, 'tracing: exporting spans over OTLP/HTTP');
  return new Tracing({
    api,
    tracer: provider.getTracer('mcp-gateway', version),
    propagator: new core.W3CTraceContextPropagator(),
    // Shutting the provider down flushes the batch processor, then stops the exporter.
    shutdown: () => provider.shutdown().catch((err: unknown) => log.warn({ err }, 'tracing: flushing spans on shutdown failed')),
  });
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

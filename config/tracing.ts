/**
 * The `tracing:` section of gateway.yaml: OpenTelemetry traces exported over OTLP/HTTP. Absent (or
 * `enabled: false`), the gateway loads no tracing code at all. docs/operations.md "Tracing" explains
 * the spans; docs/config.md lists the fields.
 */
import { z } from 'zod';
import { bool, duration } from './units.ts';

/** A number that may arrive as a string through `${ENV}` interpolation (`${TRACE_RATIO:-0.1}`). */
const ratio = () =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v),
    z.number().min(0).max(1),
  );

export const TracingSchema = z.strictObject({
  /** Lets a config carry the section and switch it with a variable (`${TRACING:-false}`). Default true. */
  enabled: bool().default(true),
  otlp: z.strictObject({
    /** The collector's OTLP/HTTP traces URL, path included: `http://collector:4318/v1/traces`. */
    endpoint: z.url(),
    /** Headers sent with every export, e.g. a vendor's API key as `${OTEL_API_KEY}`. Default none. */
    headers: z.record(z.string(), z.string()).default({}),
    /** Longest time one export request may take. Default 10s. */
    timeout: duration().default(10_000),
  }),
  /** `service.name` of every span. Default `mcp-gateway`. */
  serviceName: z.string().min(1).default('mcp-gateway'),
  /**
   * Share of traces the gateway starts (requests without a `traceparent`) that are recorded, 0 to 1.
   * A request with a `traceparent` follows its caller's decision (the sampled flag). Default 1.
   */
  sampleRatio: ratio().default(1),
});

export type TracingConfig = z.output<typeof TracingSchema>;

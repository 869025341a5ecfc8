/**
 * Prometheus metrics, the parts both sides share: label vocabularies, fixed buckets, the
 * per-process default metrics and the merge of worker registries.
 *
 * Workers record into their own prom-client registry (metrics-worker.ts, fed from the
 * diagnostics_channel seam); the primary asks every ready worker for
 * `getMetricsAsJSON()` over IPC at scrape time and merges them with its own registry
 * (metrics-primary.ts). Each metric declares how it merges (`aggregator`, STYLE §2.14):
 * `sum` for counters, histograms and additive gauges; `first` for info metrics and for
 * the per-process Node metrics, whose `process` label keeps one series per process
 * anyway (prom-client groups by label set before it applies an aggregator).
 *
 * Labels are bounded by construction: api, route id, service and policy names come from
 * the config; method, status class, error kind and decision result are small enums.
 * Never a raw path, key, consumer or client address.
 *
 * @module
 * @example
 * const text = await mergeRegistries([await primary.getMetricsAsJSON(), ...workerDumps])
 */
import { AggregatorRegistry, collectDefaultMetrics, type Registry } from 'prom-client'

/**
 * One metric as `Registry#getMetricsAsJSON()` gives it at run time (prom-client's typings
 * declare `type` as a numeric enum; the values are the strings below).
 */
export interface MetricJson {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary'
  aggregator: string
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>
}
export type MetricDump = MetricJson[]

/** Prefix of every Gatehouse metric. */
export const PREFIX = 'gatehouse_'

/**
 * Request and upstream latency, seconds: a proxy hop on loopback is ~0.3 ms, a slow
 * upstream is seconds; 10 s is past most response timeouts (everything later is +Inf).
 */
export const DURATION_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Body sizes, bytes: powers of four from 64 B to 16 MiB (the default body limit). */
export const SIZE_BUCKETS: readonly number[] = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216]

/** Values of the method label: the usual seven, then OTHER for anything else. */
export const METHOD_LABELS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'OTHER'] as const

export function methodLabel(m: string): string {
  return (METHOD_LABELS as readonly string[]).indexOf(m) >= 0 ? m : 'OTHER'
}

const CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** "2xx" for 204; "none" when no status was sent (the client left first). */
export function statusClass(status: number): string {
  return CLASSES[Math.floor(status / 100)] ?? 'none'
}

/** Label value for a request no route matched (route ids always contain "/" and "#"). */
export const NO_ROUTE = 'none'

/** Values of the upstream error kind label. */
export const UPSTREAM_ERROR_KINDS = ['refused', 'timeout', 'reset', 'protocol', 'unavailable', '5xx'] as const
export type UpstreamErrorKind = typeof UPSTREAM_ERROR_KINDS[number]

/**
 * GH_ERR_UPSTREAM_* → error kind, null for codes that are not the upstream's fault (our own
 * aborts, a request undici refused, a gateway bug). `5xx` is counted from the status.
 */
export function upstreamErrorKind(code: string | null): UpstreamErrorKind | null {
  switch (code) {
    case 'GH_ERR_UPSTREAM_REFUSED': return 'refused'
    case 'GH_ERR_UPSTREAM_CONNECT_TIMEOUT':
    case 'GH_ERR_UPSTREAM_TIMEOUT': return 'timeout'
    case 'GH_ERR_UPSTREAM_RESET': return 'reset'
    case 'GH_ERR_UPSTREAM_PROTOCOL': return 'protocol'
    case 'GH_ERR_UPSTREAM_UNAVAILABLE': return 'unavailable'
    default: return null
  }
}

/**
 * prom-client's "_total" gauges: promtool warns on them ("non-counter metrics should not
 * have _total suffix") and each is only the sum of its per-type sibling
 * (nodejs_active_handles{type} …), which stays.
 */
const DROPPED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/**
 * Node process and event-loop metrics for one process, labelled `process` ("primary",
 * "worker-0" …: slots, not pids, so restarts reuse the series). They are per process, never
 * summed: their aggregator becomes `first`, and the label keeps the series apart (even
 * process_start_time_seconds, which prom-client would `omit` in a merge).
 */
export function registerProcessMetrics(register: Registry, processName: string): void {
  const before = new Set(register.getMetricsAsArray().map((m) => m.name))
  collectDefaultMetrics({ register, labels: { process: processName } })
  for (const name of DROPPED_DEFAULTS) register.removeSingleMetric(name)
  for (const m of register.getMetricsAsArray()) {
    if (!before.has(m.name)) (m as { aggregator: string }).aggregator = 'first'
  }
}

/** A registry as JSON, what a worker sends the primary (getMetricsAsJSON, typed as it really is). */
export async function dumpRegistry(register: Registry): Promise<MetricDump> {
  return await register.getMetricsAsJSON() as unknown as MetricDump
}

/** Merges registries dumped with getMetricsAsJSON() into exposition text, by each metric's aggregator. */
export async function mergeRegistries(dumps: MetricDump[]): Promise<string> {
  return await AggregatorRegistry.aggregate(dumps).metrics()
}

/** Content type of the exposition text (Prometheus text format 0.0.4). */
export const CONTENT_TYPE = AggregatorRegistry.PROMETHEUS_CONTENT_TYPE

/**
 * Every default of every resource kind, in one table. The schemas show them as
 * `default:` annotations (documentation); compile.ts applies them. Validation does not
 * insert them: a value the user did not write must not look written (e.g. a Service
 * setting next to `service:` would then be indistinguishable from a user's mistake).
 *
 * @module
 */

export const DEFAULTS = {
  api: {
    maxRequestBodyBytes: 16 * 1024 * 1024,
    preserveHost: false,
  },
  service: {
    loadBalancing: 'round-robin',
    connectMs: 2000,
    responseMs: 15000,
    retries: 1,
    keepAliveTimeoutMs: 4000,
    connectionsPerEndpoint: 128,
    // Upstream response head limits → 502 beyond. 16 KiB of header names + values is what
    // undici (Node's http.maxHeaderSize) applied before this was configurable, so no
    // upstream that worked stops working; it is above nginx's proxy_buffer_size (4/8 KiB,
    // "upstream sent too big header") and below Envoy's 60 KiB. 100 fields is Envoy's
    // max_headers_count, which it applies to upstream responses too.
    maxResponseHeaderBytes: 16 * 1024,
    maxResponseHeaderCount: 100,
    endpointWeight: 1,
    passive: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000 },
    active: { intervalMs: 5000, timeoutMs: 2000, healthyThreshold: 2, unhealthyThreshold: 3, expectedStatus: [200, 399] },
  },
  /** Registry entries carry their own order; this is for a policy without one. */
  policyOrder: 50,
  host: {
    workers: 'auto',
    logLevel: 'info',
    accessLogs: true,
    accessLogQuery: false,
    adminAddress: 'http://127.0.0.1:9901',
    drainTimeoutMs: 25_000,
    heartbeatIntervalMs: 1000,
    heartbeatMisses: 5,
    watch: false,
    // Bounded by the pinned uWS build (docs/uws-parser-findings.md): it never dispatches a
    // request with more than 48 header fields (so our 431 must act below that), and closes a
    // header section over 4096 bytes that arrives in more than one read.
    // requestBufferBytes: a body streamed upstream holds an upstream connection for as long as
    // the client takes to send it, so slow uploads could occupy every connection to a service
    // (bench/slowloris.mjs -B); bodies up to 64 KiB are read whole first, like nginx's
    // proxy_request_buffering (whose client_body_buffer_size is 8–16 KiB, spilling to disk).
    // responseBufferBytes: a response is read from the upstream ahead of a slow client up to
    // this, so the upstream connection is free once the upstream has sent it all (nginx's
    // proxy_buffering, but in memory: 1 MiB, Envoy's default per-connection buffer), within
    // responseBufferTotalBytes per worker. Past both, a lagging client holds its connection
    // paused, up to half of an endpoint's pool; past that it is cut (slow-readers.ts).
    limits: { maxUrlBytes: 4096, maxHeaderBytes: 8192, maxHeaderCount: 40, requestBufferBytes: 65_536, responseBufferBytes: 1024 * 1024, responseBufferTotalBytes: 64 * 1024 * 1024 },
    // Load shedding per worker (src/worker/overload.ts). 10,000 in flight: by Little's law a
    // worker at a healthy 20k req/s and 50 ms upstream latency holds ~1,000, so the cap only
    // bites when upstreams stall (15 s responseMs × 700 req/s already exceeds it) and bounds
    // what a stall can pile up in one worker (an Exchange, a socket and buffers each, tens of
    // MB in all) far below its heap. 500 ms lag: an order of magnitude above a major GC pause
    // or a reload's compile on such a heap, so a healthy worker never sheds, yet well below
    // client and load-balancer timeouts (seconds), so a shed client can retry elsewhere in time.
    // maxConnections: nginx's worker_connections, sized for idle keep-alive clients (a few
    // KiB of kernel and uWS memory each), well under the unit's LimitNOFILE.
    overload: { maxRequestsInFlight: 10_000, maxEventLoopLagMs: 500, maxConnections: 20_000 },
    // Client deadlines (src/worker/client-timeouts.ts): nginx's client_body_timeout and
    // send_timeout (60 s each), long enough for mobile clients on a bad link, short enough
    // that a stalled peer does not hold a socket and an upstream request for minutes.
    timeouts: { bodyIdleTimeoutMs: 60_000, sendTimeoutMs: 60_000 },
    metrics: { enabled: true },
    tracing: { endpoint: 'http://127.0.0.1:4318/v1/traces', sampling: 1, serviceName: 'gatehouse' },
  },
} as const

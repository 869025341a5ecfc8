/**
 * V8 flags of the primary process, set when it starts (Gateway.start). Only the primary:
 * workers are forked with process.execArgv, which v8.setFlagsFromString does not change,
 * so the data path keeps V8's throughput-oriented defaults.
 *
 * Why: the primary's live heap is ~10 MiB and does not grow with use (forced full GCs every
 * 30 s find 9.8–10.3 MiB of old space over 8 min, and the same after 120 reloads and 360
 * scrapes), but every /metrics scrape allocates ~1.2 MiB (prom-client's aggregation of the
 * workers' dumps is ~1 MiB of it) in one burst that spans several scavenges of the
 * primary's small young generation, so some of it (~100 KiB a scrape) is promoted to old
 * space. With V8's defaults, after the start-up GCs the old space is not mark-compacted
 * again until it reaches its allocation limit, which a control-plane allocation rate takes
 * minutes to reach: measured with a scrape every 5 s (--trace-gc), no mark-compact from
 * 33 s to 398 s while the heap grew 11 → 19 MB, then one that left 12 MB live and 20.5 MB
 * committed; RSS +10 % after warm-up (bench/soak.mjs: 63 → 70 MiB, +10.7 %, level after
 * ~6 min). Reloads alone do not do it.
 *
 * `--optimize-for-size` ("favour memory size over execution speed") makes V8 size this
 * heap for memory: the same run mark-compacts (memory-reducing, 3–6 ms) every 1.5–2 min at
 * 14–15 MB, the heap stays at 15–16 MB committed and RSS within +1–4 % after warm-up, the
 * primary's CPU time unchanged within noise. The primary never handles a request, so memory
 * matters more than speed here.
 *
 * A flag this Node's V8 does not know would only print "unrecognized flag" on stderr and
 * be ignored (test/primary/v8-flags.test.ts checks they are all known).
 *
 * @module
 */
import v8 from 'node:v8'

export const PRIMARY_V8_FLAGS: readonly string[] = ['--optimize-for-size']

export function applyPrimaryV8Flags(): void {
  for (const flag of PRIMARY_V8_FLAGS) v8.setFlagsFromString(flag)
}

/* js_loop.h: the bare cnats JetStream loop (the floor under actio's work
 * queues): publish N jobs asynchronously, then one pull consumer takes
 * them in batches and acks each. */
#ifndef BENCH_JS_LOOP_H
#define BENCH_JS_LOOP_H

#include <stdint.h>

/* The stream both sides use (work-queue retention, on disk). */
#define BENCH_JS_STREAM "BENCH_JOBS"
#define BENCH_JS_SUBJECT "bench.jobs"
#define BENCH_JS_CONSUMER "bench-workers"

/* Over one connection to url: makes the stream anew (replicas copies),
 * publishes n 16-byte jobs (each with a message id) with at most
 * max_pending acks awaited, then pulls them `batch` at a time from a
 * durable consumer and acks each one whose bytes check. *publish_s and
 * *process_s: the two phases' seconds (the second from the consumer's
 * making, as actio's worker makes it); *ok: jobs acked. Returns 0, or -1
 * when cnats could not connect, make the stream or subscribe. */
int bench_js_loop(const char *url, uint64_t n, int replicas, int batch, int64_t max_pending,
                  double *publish_s, double *process_s, uint64_t *ok);

#endif

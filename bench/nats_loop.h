/* nats_loop.h: the bare cnats request loop (the floor under remote asks),
 * and the responders both sides of the comparison ask. */
#ifndef BENCH_NATS_LOOP_H
#define BENCH_NATS_LOOP_H

#include <stddef.h>
#include <stdint.h>

/* Asks `subject` n times over one connection to url, c requests in flight,
 * every reply on one wildcard inbox subscription (a token per request, as
 * the actor does), each request's next sent from the reply's callback.
 * Counts replies that echo their request into *ok. Returns 0, or -1 when
 * cnats could not connect or subscribe. */
int bench_nats_loop(const char *url, const char *subject, uint64_t n, uint64_t c,
                    uint64_t *ok);

/* r responders, each its own connection, in queue group `queue` on
 * `subject`, answering each request with its bytes. Returns a handle for
 * bench_nats_responders_stop, or NULL. */
void *bench_nats_responders_start(const char *url, const char *subject,
                                  const char *queue, unsigned r);
void bench_nats_responders_stop(void *h);

#endif

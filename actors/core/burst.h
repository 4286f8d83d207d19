/* burst.h: a burst of completions on one thread: work that a consumer of
 * those completions would start at once (a batcher's eager send) is
 * deferred to the burst's end, so that what the burst brings goes together.
 * A worker that completes many futures in a loop (the file actor's group
 * commit) wraps the loop in actio__burst_begin/end. */
#ifndef ACTIO_ACTORS_CORE_BURST_H
#define ACTIO_ACTORS_CORE_BURST_H

/* A deferred call, owned by whoever defers it (embedded in its object). */
typedef struct actio__burst_hook {
  struct actio__burst_hook *next;
  void (*fn)(struct actio__burst_hook *h);
} actio__burst_hook;

/* Opens a burst on this thread (bursts nest: the outermost end runs the
 * hooks). */
void actio__burst_begin(void);

/* Closes the burst opened last on this thread; at the outermost, runs the
 * hooks deferred during it, in order, once each, outside any burst (so what
 * they would defer they do at once). */
void actio__burst_end(void);

/* Runs now, in order, the hooks deferred so far in this thread's burst,
 * which stays open (what they would defer they do at once). A thread about
 * to block calls it first, as stdio flushes its output before a read: what
 * it waits for may be held by its own burst (a callback in a file group's
 * completions that waits for its row's batch), and would never come. */
void actio__burst_flush(void);

/* Whether this thread is inside a burst. */
int actio__burst_active(void);

/* Inside a burst on this thread, queues h (not queued already) to run at
 * its end and returns 1; outside any burst returns 0 and does nothing: the
 * caller does the work now. */
int actio__burst_defer(actio__burst_hook *h);

/* Takes h, queued by actio__burst_defer on this thread, back off the list
 * without running it; 1 if it was queued here, 0 if not (it ran, or it
 * belongs to another thread's burst). */
int actio__burst_withdraw(actio__burst_hook *h);

#endif

/* burst.c: bursts of completions on one thread, and the calls deferred to
 * their end (a thread-local list: nothing shared, nothing atomic). */
#include <stddef.h>

#include "actors/core/burst.h"
#include "base/debug.h"

static _Thread_local struct {
  unsigned depth;
  actio__burst_hook *head, **tail;
} me;

void actio__burst_begin(void) {
  if (me.depth++ == 0 && me.tail == NULL)
    me.tail = &me.head;
}

/* Runs the deferred hooks in order, each taken off the list before its
 * call; me.depth is 0 (outside any burst). */
static void run_hooks(void) {
  for (actio__burst_hook *h; (h = me.head) != NULL;) {
    if ((me.head = h->next) == NULL)
      me.tail = &me.head;
    h->next = NULL;
    h->fn(h);
  }
}

void actio__burst_end(void) {
  ACTIO__ASSERT(me.depth > 0);
  if (--me.depth == 0)
    run_hooks();
}

void actio__burst_flush(void) {
  if (me.depth == 0 || me.head == NULL)
    return;
  unsigned depth = me.depth;
  me.depth = 0;
  run_hooks();
  me.depth = depth;
}

int actio__burst_active(void) { return me.depth != 0; }

int actio__burst_defer(actio__burst_hook *h) {
  if (me.depth == 0)
    return 0;
  h->next = NULL;
  *me.tail = h;
  me.tail = &h->next;
  return 1;
}

int actio__burst_withdraw(actio__burst_hook *h) {
  for (actio__burst_hook **p = &me.head; *p != NULL; p = &(*p)->next)
    if (*p == h) {
      if ((*p = h->next) == NULL)
        me.tail = p;
      h->next = NULL;
      return 1;
    }
  return 0;
}

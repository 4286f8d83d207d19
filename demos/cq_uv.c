/* cq_uv.c: actio's completions in a libuv loop that also serves a timer of
 * its own: a uv_poll_t watches the queue's descriptor.
 *   actio-demo-cq-uv DSN [URL...] */
#include <stdio.h>
#include <uv.h>

#include "cq_work.h"

static uv_poll_t cq_watch;
static uv_timer_t timer;

static void stop_when_finished(cq_work *w) {
  if (!cq_work_finished(w) || uv_is_closing((uv_handle_t *)&timer))
    return;
  uv_poll_stop(&cq_watch);
  uv_timer_stop(&timer);
  uv_close((uv_handle_t *)&cq_watch, NULL); /* uv_run returns once both are closed */
  uv_close((uv_handle_t *)&timer, NULL);
}

static void on_readable(uv_poll_t *h, int status, int events) {
  cq_work *w = h->data;
  if (status == 0 && (events & UV_READABLE))
    cq_work_drain(w);
  stop_when_finished(w);
}

static void on_tick(uv_timer_t *t) {
  cq_work_tick(t->data);
  stop_when_finished(t->data);
}

int main(int argc, char **argv) {
  cq_work w;
  if (cq_work_start(&w, argc, argv) != 0)
    return 1;
  uv_loop_t *loop = uv_default_loop();
  cq_watch.data = timer.data = &w;
  int rc;
  if ((rc = uv_poll_init(loop, &cq_watch, actio_cq_fd(w.cq))) != 0 ||
      (rc = uv_poll_start(&cq_watch, UV_READABLE, on_readable)) != 0 ||
      (rc = uv_timer_init(loop, &timer)) != 0 ||
      (rc = uv_timer_start(&timer, on_tick, TICK_MS, TICK_MS)) != 0) {
    fprintf(stderr, "libuv: %s\n", uv_strerror(rc));
    return 1;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return cq_work_end(&w);
}

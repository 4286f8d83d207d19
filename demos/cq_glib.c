/* cq_glib.c: actio's completions in a GLib main loop that also serves a
 * timer of its own: g_unix_fd_add watches the queue's descriptor.
 *   actio-demo-cq-glib DSN [URL...] */
#include <glib-unix.h>
#include <glib.h>

#include "cq_work.h"

static GMainLoop *main_loop;

static gboolean stop_when_finished(cq_work *w) {
  if (!cq_work_finished(w))
    return G_SOURCE_CONTINUE;
  g_main_loop_quit(main_loop);
  return G_SOURCE_REMOVE;
}

static gboolean on_readable(gint fd, GIOCondition cond, gpointer arg) {
  (void)fd;
  if (cond & G_IO_IN)
    cq_work_drain(arg);
  return stop_when_finished(arg);
}

static gboolean on_tick(gpointer arg) {
  cq_work_tick(arg);
  return stop_when_finished(arg);
}

int main(int argc, char **argv) {
  cq_work w;
  if (cq_work_start(&w, argc, argv) != 0)
    return 1;
  main_loop = g_main_loop_new(NULL, FALSE);
  guint watch = g_unix_fd_add(actio_cq_fd(w.cq), G_IO_IN, on_readable, &w);
  guint timer = g_timeout_add(TICK_MS, on_tick, &w);
  g_main_loop_run(main_loop);
  /* The source that saw the end removed itself; remove the other. */
  GMainContext *ctx = g_main_context_default();
  GSource *s;
  if ((s = g_main_context_find_source_by_id(ctx, watch)) != NULL)
    g_source_destroy(s);
  if ((s = g_main_context_find_source_by_id(ctx, timer)) != NULL)
    g_source_destroy(s);
  g_main_loop_unref(main_loop);
  return cq_work_end(&w);
}

/* cq_epoll.c: actio's completions in a plain epoll loop that also serves a
 * timer of its own: the queue's descriptor is one more fd to watch.
 *   actio-demo-cq-epoll DSN [URL...] */
#include <stdint.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cq_work.h"

int main(int argc, char **argv) {
  cq_work w;
  if (cq_work_start(&w, argc, argv) != 0)
    return 1;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  struct itimerspec every = {.it_interval = {0, TICK_MS * 1000000L},
                             .it_value = {0, TICK_MS * 1000000L}};
  struct epoll_event cq_ev = {.events = EPOLLIN, .data.ptr = &w}; /* level-triggered */
  struct epoll_event timer_ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (ep < 0 || timer < 0 || timerfd_settime(timer, 0, &every, NULL) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, actio_cq_fd(w.cq), &cq_ev) != 0 ||
      epoll_ctl(ep, EPOLL_CTL_ADD, timer, &timer_ev) != 0) {
    perror("epoll");
    return 1;
  }
  while (!cq_work_finished(&w)) {
    struct epoll_event ready[2];
    int n = epoll_wait(ep, ready, 2, -1);
    for (int i = 0; i < n; i++) {
      if (ready[i].data.ptr == &w) {
        cq_work_drain(&w);
      } else {
        uint64_t expirations;
        if (read(timer, &expirations, sizeof expirations) == sizeof expirations)
          cq_work_tick(&w);
      }
    }
  }
  epoll_ctl(ep, EPOLL_CTL_DEL, actio_cq_fd(w.cq), NULL);
  close(timer);
  close(ep);
  return cq_work_end(&w);
}

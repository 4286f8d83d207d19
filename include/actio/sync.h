/** @file actio/sync.h
 * Structures built on futures for any threads and actors to share: task
 * groups that grow while they run. */
#ifndef ACTIO_SYNC_H
#define ACTIO_SYNC_H

#include <stddef.h>

#include "actio/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup sync Groups
 * A task group (asyncio's TaskGroup, libdill's bundle): futures added at
 * any time, waited for as one future.
 * @{ */

/**
 * A task group: a set of futures that grows while it runs. Every function
 * here is thread-safe. The group holds a reference to each member until
 * the member completes, then lets go of it: a pending member costs a
 * 40-byte record (a 48-byte heap block), plus a 32-byte block for its
 * callback when the future's inline callback slot is taken already (an
 * I/O request's is, by its metrics); a completed one costs nothing.
 */
typedef struct actio_group actio_group;

/** Makes an empty, open group. Under ACTIO_GATHER_FAIL_FAST the first
 * member that fails (with any code but ACTIO_ECANCELED: a member cancelled
 * by someone else just leaves, as in asyncio's TaskGroup) cancels the
 * others and fails the group with its error; under ACTIO_GATHER_SETTLE_ALL
 * every member runs to its end and the group resolves (with NULL; each
 * member keeps its own outcome). *out is the caller's, freed with
 * actio_group_destroy. Returns 0, ACTIO_EINVAL (a NULL out, an unknown
 * policy) or ACTIO_ENOMEM. Any thread. */
int actio_group_create(actio_group **out, actio_gather_policy policy);

/** Adds `f` to the group, which takes its own reference (the caller keeps
 * theirs). Any thread, at any time until the group completes or is closed;
 * a member may add others (add the follow-up before the member that starts
 * it completes, say the output of a then-chain rather than its first step,
 * or the group may complete in between). A future completed already is
 * accepted and counts at once. Returns 0, ACTIO_EINVAL (a NULL argument),
 * ACTIO_ECLOSED (the group completed, failed or was closed: `f` is left
 * alone) or ACTIO_ENOMEM. */
int actio_group_add(actio_group *g, actio_future *f);

/** The group's future, a reference of the caller's: from the first call on,
 * it resolves as soon as no member is pending (at once for an empty group),
 * and after that the group takes no more members. It fails sooner under
 * fail-fast, and is cancelled by actio_group_close; cancelling it closes the
 * group. Returns 0 or ACTIO_EINVAL. Any thread. */
int actio_group_wait(actio_group *g, actio_future **out);

/** The number of members not yet completed. Any thread. */
size_t actio_group_pending(const actio_group *g);

/** Closes the group: later adds fail with ACTIO_ECLOSED, the members still
 * pending are cancelled (they see ACTIO_ECANCELED), and so is the group's
 * future if it had not completed. Idempotent; any thread. */
void actio_group_close(actio_group *g);

/** Closes the group (see actio_group_close) and lets go of the handle; the
 * group's future, where someone holds it, stays valid. NULL is accepted. */
void actio_group_destroy(actio_group *g);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* ACTIO_SYNC_H */

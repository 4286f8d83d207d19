/** @file actio.h
 * The umbrella header: concurrent file, HTTP and PostgreSQL I/O for C, as
 * actors with worker pools, composed with futures. */
#ifndef ACTIO_H
#define ACTIO_H

#include "actio/error.h"
#include "actio/future.h"
#include "actio/actor.h"
#include "actio/timer.h"
#include "actio/file.h"
#include "actio/http.h"
#include "actio/db.h"
#include "actio/nats.h"
#include "actio/supervisor.h"
#include "actio/sync.h"
#include "actio/batch.h"
#include "actio/cq.h"

/** The version of these headers: major, minor, patch. @{ */
#define ACTIO_VERSION_MAJOR 0
#define ACTIO_VERSION_MINOR 1
#define ACTIO_VERSION_PATCH 0
/** @} */

#endif

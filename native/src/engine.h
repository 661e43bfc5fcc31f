/*
 * engine.h — internal structure of the media engine (engine.c). The public
 * API is the `engine` region of mediacore.h; nothing here is seen by Python.
 *
 * Ownership and threads
 *  - The control thread (one at a time; Python holds a lock) owns the lists
 *    of sessions and streams and is the only one that allocates or frees
 *    them.
 *  - The I/O thread reads an immutable routing table (`eng_table`) that the
 *    control thread publishes with a release store. Each I/O loop iteration
 *    starts by loading the table generation and pointer (acquire) and then
 *    storing the generation it saw into `io_seen_gen` (release): from that
 *    moment it holds no pointer into an older table. After publishing
 *    generation g, the control thread wakes the I/O thread and waits until
 *    io_seen_gen >= g before freeing what the new table no longer references
 *    (RCU with a single reader).
 *  - Per-stream state (sequence tracking, buffers, counters) is written only
 *    by the I/O thread. Counters are copied into a mutex-protected snapshot
 *    every publish interval (and at stop), which the control thread reads.
 *    While no I/O thread runs (not started, or MC_ENGINE_NO_THREAD) the
 *    control thread is the only thread and reads live state.
 */
#ifndef MC_ENGINE_H
#define MC_ENGINE_H

#include "compat.h"
#include "mediacore.h"
#include "net.h"

/* Bytes of headroom per datagram buffer beyond the largest accepted UDP
 * payload (SRTP tag, RTP header added on send). */
#define ENG_MAX_DATAGRAM 2048u
#define ENG_BUF_STRIDE (ENG_MAX_DATAGRAM + 64u) /* not a 4 KiB divisor: avoids 4K aliasing */
#define ENG_BATCH MC_NET_MAX_BATCH
#define ENG_PUBLISH_NS 20000000LL

#endif /* MC_ENGINE_H */

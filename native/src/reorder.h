/*
 * reorder.h — video reorder buffer with NACK and key-frame (PLI) decisions
 * (public API: mediacore.h region `rtp`, mc_reorder_*). Thread role
 * [owner]: one thread inserts, pops and asks for NACK lists; no locking.
 *
 * Packets are released strictly in sequence order. A missing sequence
 * number is a gap: it is offered for NACK (RFC 4585 generic NACK) up to
 * nack_max_retries times, spaced by max(nack_min_interval_ns, rtt). A gap
 * is given up — skipped, counted lost, and a key frame requested — when it
 * has held back release for max_wait_ns, when its retries are exhausted and
 * one more spacing interval has passed without a retransmission, or when
 * a newer packet lies a whole capacity or more ahead (then everything before
 * it is given up). Only the gap at the head of the buffer is judged: gaps
 * behind it are judged when release reaches them, so the consumer should pop
 * regularly (the engine pops after every receive batch).
 */
#ifndef MC_REORDER_H
#define MC_REORDER_H

#include "mediacore.h"

#endif /* MC_REORDER_H */

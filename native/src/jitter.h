/*
 * jitter.h — adaptive audio jitter buffer (public API: mediacore.h region
 * `rtp`, mc_jitter_*). Thread role [owner]: one thread (the engine's I/O or
 * media-clock thread) inserts and pops; there is no locking.
 *
 * Model: one packet = one frame of frame_ms (fixed ptime, as Teams and
 * WebRTC Opus send). The consumer pops once per frame_ms tick. The buffer
 * plays sequence numbers in order; the "current delay" is the span from the
 * next slot to the newest packet held, in frames. The target delay is
 * frame_ms + 4 x the interarrival jitter estimate (RFC 3550 A.8 in ms),
 * clamped to [min_delay_ms, max_delay_ms]. When the next packet is missing:
 * LOST if the buffer already holds at least the target delay behind it
 * (waiting longer would exceed the target), else UNDERRUN (the slot is
 * concealed and the delay grows by one frame, giving the packet more time).
 * When the buffer holds more than target + one frame for a while, one frame
 * is dropped (counted) to shrink the delay.
 */
#ifndef MC_JITTER_H
#define MC_JITTER_H

#include "mediacore.h"

#endif /* MC_JITTER_H */

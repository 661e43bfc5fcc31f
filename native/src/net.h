/*
 * net.h — UDP sockets for the engine, behind a small portable surface.
 *
 * The only file that includes BSD socket or Winsock headers is net.c. Engine
 * code sees addresses as `mc_netaddr` (family, port, 16 address bytes), which
 * compare with memcmp-free field checks and never need the OS headers.
 *
 * Thread roles: a socket belongs to one thread for receiving (the engine's
 * I/O thread); mc_udp_send_to and mc_udp_send_batch may be called from the
 * I/O thread and (for the wake socket only) from control threads.
 *
 * Batches: Linux uses recvmmsg/sendmmsg (one syscall per batch: ~1.5 us of
 * receiver CPU per datagram on the development VM, against ~10 us for an
 * asyncio datagram transport); other systems loop over recvfrom/sendto
 * on a nonblocking socket until it would block.
 */
#ifndef MC_NET_H
#define MC_NET_H

#include <stddef.h>
#include <stdint.h>

#include "mediacore.h"

enum {
    MC_NET_AF_INET = 4,
    MC_NET_AF_INET6 = 6,
    MC_NET_MAX_BATCH = 64
};

typedef struct mc_netaddr {
    uint16_t family; /* MC_NET_AF_INET / MC_NET_AF_INET6, 0 = unset */
    uint16_t port;   /* host order */
    uint32_t scope_id;
    uint8_t addr[16]; /* IPv4 in the first 4 bytes */
} mc_netaddr;

typedef struct mc_udp mc_udp;

/* One datagram of a batch. Receive: the caller sets data/capacity; the call
 * fills length and from. Send: data/length/to. */
typedef struct mc_net_msg {
    uint8_t *data;
    uint32_t capacity;
    uint32_t length;
    mc_netaddr addr; /* receive: source; send: destination */
} mc_net_msg;

/* [any] Process-wide socket library set-up (WSAStartup on Windows; a no-op
 * elsewhere). Reference counted; every mc_udp_open calls it. */
mc_status mc_net_init(void);
void mc_net_cleanup(void);

/* [any] Parse a numeric IPv4/IPv6 literal ("127.0.0.1", "::1", "0.0.0.0",
 * "::") and a port. No name resolution: media addresses are literals. */
mc_status mc_netaddr_parse(const char *host, uint16_t port, mc_netaddr *out);
/* [any] Numeric text form of the address (no port). */
mc_status mc_netaddr_format(const mc_netaddr *addr, char *out, size_t out_size);
/* [any] 1 when family, address and port are equal. */
int mc_netaddr_equal(const mc_netaddr *a, const mc_netaddr *b);

/* [control] Open a nonblocking UDP socket bound to `bind` (port 0 = any
 * free port). IPv6 sockets are dual-stack when bound to "::" (v4-mapped
 * peers appear as IPv4). rcvbuf/sndbuf: requested socket buffer sizes in
 * bytes (0 = 4 MiB); on Linux SO_RCVBUFFORCE is tried first. */
mc_status mc_udp_open(const mc_netaddr *bind, int32_t rcvbuf, int32_t sndbuf, mc_udp **out);
void mc_udp_close(mc_udp *udp);
/* [any] The bound local address (with the real port). */
mc_status mc_udp_local(const mc_udp *udp, mc_netaddr *out);
/* [any] Effective receive buffer size in bytes. */
mc_status mc_udp_rcvbuf(const mc_udp *udp, int32_t *bytes);

/* [owner] Receive up to `count` datagrams without blocking. *received = 0
 * when none is pending (MC_OK). Datagrams larger than a message's capacity
 * are truncated and flagged by length = capacity + 1 (callers count and drop
 * them). MC_E_IO on a socket error other than would-block. */
mc_status mc_udp_recv_batch(mc_udp *udp, mc_net_msg *msgs, uint32_t count, uint32_t *received);
/* [owner] Send `count` datagrams; *sent = how many the OS took (a full
 * socket buffer stops the batch early with MC_OK). */
mc_status mc_udp_send_batch(mc_udp *udp, const mc_net_msg *msgs, uint32_t count, uint32_t *sent);
/* [any] Send one datagram. */
mc_status mc_udp_send_to(mc_udp *udp, const uint8_t *data, uint32_t length, const mc_netaddr *to);

/* [owner] Wait until one of up to two sockets is readable or timeout_ns
 * passes (< 0 waits forever). `b` may be NULL. *ready bit 0: a readable,
 * bit 1: b readable. MC_OK or MC_E_TIMEOUT. */
mc_status mc_udp_wait(mc_udp *a, mc_udp *b, int64_t timeout_ns, uint32_t *ready);

/* [owner] Discard everything pending on a socket (the engine's wake socket). */
void mc_udp_drain(mc_udp *udp);

/* [any] CPU time consumed by the calling thread, in ns (0 if unknown). */
int64_t mc_net_thread_cpu_ns(void);

#endif /* MC_NET_H */

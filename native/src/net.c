/*
 * net.c — UDP sockets over BSD sockets (Linux, other POSIX) or Winsock 2.
 * The contract is in net.h; this is the only file with socket headers.
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* recvmmsg / sendmmsg */
#endif

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#endif

#include "net.h"

#include <string.h>
#include <stdlib.h>

#include "compat.h"

#if defined(MC_OS_WINDOWS)
typedef SOCKET sock_t;
typedef int socklen_t_;
#define SOCK_INVALID INVALID_SOCKET
#define sock_close closesocket
static int sock_would_block(void)
{
    int e = WSAGetLastError();
    return e == WSAEWOULDBLOCK || e == WSAECONNRESET || e == WSAEMSGSIZE;
}
static void capture_error(void) { mc_set_os_error((int32_t)WSAGetLastError()); }
#else
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
typedef int sock_t;
typedef socklen_t socklen_t_;
#define SOCK_INVALID (-1)
#define sock_close close
static int sock_would_block(void)
{
    /* ECONNREFUSED: an ICMP port-unreachable from an earlier send to a peer
     * that is gone; it is not a receive error, just nothing to read. */
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED;
}
static void capture_error(void) { mc_capture_os_error(); }
#endif

struct mc_udp {
    sock_t fd;
    int family; /* AF_INET / AF_INET6 */
    mc_netaddr local;
};

/* ---- library set-up ------------------------------------------------------------ */

/* Windows: Winsock counts WSAStartup/WSACleanup pairs itself (thread-safe), so
 * every init/cleanup calls through. Counting here and starting only on 0 -> 1
 * would let a second thread use sockets before the first thread's WSAStartup
 * returned, and a cleanup racing an init could tear Winsock down under it. */
mc_status mc_net_init(void)
{
#if defined(MC_OS_WINDOWS)
    WSADATA wsa;
    int r = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (r != 0) {
        mc_set_os_error((int32_t)r); /* WSAGetLastError is not usable before start-up */
        return MC_E_IO;
    }
#endif
    return MC_OK;
}

void mc_net_cleanup(void)
{
#if defined(MC_OS_WINDOWS)
    WSACleanup();
#endif
}

/* ---- addresses ------------------------------------------------------------------ */

static socklen_t_ to_sockaddr(const mc_netaddr *a, int sock_family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (sock_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        if (a->family == MC_NET_AF_INET) {
            /* v4-mapped (::ffff:a.b.c.d) on a dual-stack socket */
            uint8_t *b = (uint8_t *)&s6->sin6_addr;
            b[10] = 0xff;
            b[11] = 0xff;
            memcpy(b + 12, a->addr, 4);
        } else {
            memcpy(&s6->sin6_addr, a->addr, 16);
            s6->sin6_scope_id = a->scope_id;
        }
        return (socklen_t_)sizeof *s6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(a->port);
    memcpy(&s4->sin_addr, a->addr, 4);
    return (socklen_t_)sizeof *s4;
}

static void from_sockaddr(const struct sockaddr_storage *ss, mc_netaddr *a)
{
    memset(a, 0, sizeof *a);
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        const uint8_t *b = (const uint8_t *)&s6->sin6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        a->port = ntohs(s6->sin6_port);
        if (memcmp(b, mapped, 12) == 0) {
            a->family = MC_NET_AF_INET;
            memcpy(a->addr, b + 12, 4);
        } else {
            a->family = MC_NET_AF_INET6;
            memcpy(a->addr, b, 16);
            a->scope_id = s6->sin6_scope_id;
        }
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        a->family = MC_NET_AF_INET;
        a->port = ntohs(s4->sin_port);
        memcpy(a->addr, &s4->sin_addr, 4);
    }
}

mc_status mc_netaddr_parse(const char *host, uint16_t port, mc_netaddr *out)
{
    if (!host || !out)
        return MC_E_INVAL;
    memset(out, 0, sizeof *out);
    out->port = port;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        out->family = MC_NET_AF_INET;
        memcpy(out->addr, &a4, 4);
        return MC_OK;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        out->family = MC_NET_AF_INET6;
        memcpy(out->addr, &a6, 16);
        return MC_OK;
    }
    return MC_E_INVAL;
}

mc_status mc_netaddr_format(const mc_netaddr *addr, char *out, size_t out_size)
{
    if (!addr || !out || out_size < 46)
        return MC_E_INVAL;
    const char *r = NULL;
    if (addr->family == MC_NET_AF_INET)
        r = inet_ntop(AF_INET, (void *)addr->addr, out, (socklen_t_)out_size);
    else if (addr->family == MC_NET_AF_INET6)
        r = inet_ntop(AF_INET6, (void *)addr->addr, out, (socklen_t_)out_size);
    return r ? MC_OK : MC_E_INVAL;
}

int mc_netaddr_equal(const mc_netaddr *a, const mc_netaddr *b)
{
    if (a->family != b->family || a->port != b->port)
        return 0;
    return memcmp(a->addr, b->addr, a->family == MC_NET_AF_INET ? 4 : 16) == 0;
}

/* ---- sockets -------------------------------------------------------------------- */

static int set_nonblocking(sock_t fd)
{
#if defined(MC_OS_WINDOWS)
    u_long on = 1;
    return ioctlsocket(fd, FIONBIO, &on) == 0;
#else
    int fl = fcntl(fd, F_GETFL, 0);
    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
#endif
}

static void set_buffer(sock_t fd, int opt, int force_opt, int32_t bytes)
{
    int v = (int)bytes;
    (void)force_opt;
#if defined(MC_OS_LINUX)
    /* SO_*BUFFORCE ignores rmem_max but needs CAP_NET_ADMIN; fall back quietly */
    if (setsockopt(fd, SOL_SOCKET, force_opt, (const char *)&v, sizeof v) == 0)
        return;
#endif
    setsockopt(fd, SOL_SOCKET, opt, (const char *)&v, sizeof v);
}

mc_status mc_udp_open(const mc_netaddr *bind_addr, int32_t rcvbuf, int32_t sndbuf, mc_udp **out)
{
    if (!bind_addr || !out ||
        (bind_addr->family != MC_NET_AF_INET && bind_addr->family != MC_NET_AF_INET6))
        return MC_E_INVAL;
    *out = NULL;
    mc_status s = mc_net_init();
    if (s != MC_OK)
        return s;
    int family = bind_addr->family == MC_NET_AF_INET6 ? AF_INET6 : AF_INET;
    sock_t fd = socket(family, SOCK_DGRAM, IPPROTO_UDP);
    if (fd == SOCK_INVALID) {
        capture_error();
        mc_net_cleanup();
        return MC_E_IO;
    }
    if (family == AF_INET6) {
        int off = 0; /* dual stack */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&off, sizeof off);
    }
#if defined(MC_OS_WINDOWS)
    {
        /* Without this an ICMP port-unreachable makes the next recvfrom fail
         * with WSAECONNRESET on Windows. */
        BOOL no = FALSE;
        DWORD ret = 0;
        WSAIoctl(fd, _WSAIOW(IOC_VENDOR, 12), &no, sizeof no, NULL, 0, &ret, NULL, NULL);
    }
#endif
#if defined(MC_OS_LINUX)
    set_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, rcvbuf > 0 ? rcvbuf : (4 << 20));
    set_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, sndbuf > 0 ? sndbuf : (4 << 20));
#else
    set_buffer(fd, SO_RCVBUF, 0, rcvbuf > 0 ? rcvbuf : (4 << 20));
    set_buffer(fd, SO_SNDBUF, 0, sndbuf > 0 ? sndbuf : (4 << 20));
#endif
    struct sockaddr_storage ss;
    socklen_t_ len = to_sockaddr(bind_addr, family, &ss);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || !set_nonblocking(fd)) {
        capture_error();
        sock_close(fd);
        mc_net_cleanup();
        return MC_E_IO;
    }
    mc_udp *u = (mc_udp *)calloc(1, sizeof *u);
    if (!u) {
        sock_close(fd);
        mc_net_cleanup();
        return MC_E_NOMEM;
    }
    u->fd = fd;
    u->family = family;
    socklen_t_ sl = (socklen_t_)sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        from_sockaddr(&ss, &u->local);
    if (family == AF_INET6 && u->local.family == MC_NET_AF_INET)
        u->local.family = MC_NET_AF_INET6; /* "::" is not v4-mapped; keep the family */
    *out = u;
    return MC_OK;
}

void mc_udp_close(mc_udp *udp)
{
    if (!udp)
        return;
    sock_close(udp->fd);
    free(udp);
    mc_net_cleanup();
}

mc_status mc_udp_local(const mc_udp *udp, mc_netaddr *out)
{
    if (!udp || !out)
        return MC_E_INVAL;
    *out = udp->local;
    return MC_OK;
}

mc_status mc_udp_rcvbuf(const mc_udp *udp, int32_t *bytes)
{
    if (!udp || !bytes)
        return MC_E_INVAL;
    int v = 0;
    socklen_t_ l = (socklen_t_)sizeof v;
    if (getsockopt(udp->fd, SOL_SOCKET, SO_RCVBUF, (char *)&v, &l) != 0) {
        capture_error();
        return MC_E_IO;
    }
    *bytes = (int32_t)v;
    return MC_OK;
}

mc_status mc_udp_recv_batch(mc_udp *udp, mc_net_msg *msgs, uint32_t count, uint32_t *received)
{
    if (!udp || !msgs || !received)
        return MC_E_INVAL;
    *received = 0;
    if (count > MC_NET_MAX_BATCH)
        count = MC_NET_MAX_BATCH;
#if defined(MC_OS_LINUX)
    struct mmsghdr hdrs[MC_NET_MAX_BATCH];
    struct iovec iov[MC_NET_MAX_BATCH];
    struct sockaddr_storage from[MC_NET_MAX_BATCH];
    for (uint32_t i = 0; i < count; i++) {
        iov[i].iov_base = msgs[i].data;
        iov[i].iov_len = msgs[i].capacity;
        memset(&hdrs[i].msg_hdr, 0, sizeof hdrs[i].msg_hdr);
        hdrs[i].msg_hdr.msg_name = &from[i];
        hdrs[i].msg_hdr.msg_namelen = sizeof from[i];
        hdrs[i].msg_hdr.msg_iov = &iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
        hdrs[i].msg_len = 0;
    }
    int n = recvmmsg(udp->fd, hdrs, count, MSG_DONTWAIT, NULL);
    if (n < 0) {
        if (sock_would_block())
            return MC_OK;
        capture_error();
        return MC_E_IO;
    }
    for (int i = 0; i < n; i++) {
        msgs[i].length = hdrs[i].msg_len;
        if (hdrs[i].msg_hdr.msg_flags & MSG_TRUNC)
            msgs[i].length = msgs[i].capacity + 1;
        from_sockaddr(&from[i], &msgs[i].addr);
    }
    *received = (uint32_t)n;
    return MC_OK;
#else
    uint32_t n = 0;
    while (n < count) {
        struct sockaddr_storage from;
        socklen_t_ fl = (socklen_t_)sizeof from;
        int r = (int)recvfrom(udp->fd, (char *)msgs[n].data, (int)msgs[n].capacity, 0,
                              (struct sockaddr *)&from, &fl);
        if (r < 0) {
#if defined(MC_OS_WINDOWS)
            if (WSAGetLastError() == WSAEMSGSIZE) {
                msgs[n].length = msgs[n].capacity + 1;
                from_sockaddr(&from, &msgs[n].addr);
                n++;
                continue;
            }
#endif
            if (sock_would_block())
                break;
            capture_error();
            *received = n;
            return n ? MC_OK : MC_E_IO;
        }
        msgs[n].length = (uint32_t)r;
        from_sockaddr(&from, &msgs[n].addr);
        n++;
    }
    *received = n;
    return MC_OK;
#endif
}

mc_status mc_udp_send_batch(mc_udp *udp, const mc_net_msg *msgs, uint32_t count, uint32_t *sent)
{
    if (!udp || !msgs || !sent)
        return MC_E_INVAL;
    *sent = 0;
    uint32_t done = 0;
#if defined(MC_OS_LINUX)
    while (done < count) {
        uint32_t chunk = count - done;
        if (chunk > MC_NET_MAX_BATCH)
            chunk = MC_NET_MAX_BATCH;
        struct mmsghdr hdrs[MC_NET_MAX_BATCH];
        struct iovec iov[MC_NET_MAX_BATCH];
        struct sockaddr_storage to[MC_NET_MAX_BATCH];
        for (uint32_t i = 0; i < chunk; i++) {
            const mc_net_msg *m = &msgs[done + i];
            iov[i].iov_base = m->data;
            iov[i].iov_len = m->length;
            memset(&hdrs[i].msg_hdr, 0, sizeof hdrs[i].msg_hdr);
            hdrs[i].msg_hdr.msg_namelen = to_sockaddr(&m->addr, udp->family, &to[i]);
            hdrs[i].msg_hdr.msg_name = &to[i];
            hdrs[i].msg_hdr.msg_iov = &iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = sendmmsg(udp->fd, hdrs, chunk, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            if (errno == ECONNREFUSED) { /* stale ICMP error: skip that datagram */
                done++;
                continue;
            }
            capture_error();
            *sent = done;
            return done ? MC_OK : MC_E_IO;
        }
        done += (uint32_t)n;
        if ((uint32_t)n < chunk)
            break;
    }
#else
    for (; done < count; done++) {
        struct sockaddr_storage to;
        socklen_t_ tl = to_sockaddr(&msgs[done].addr, udp->family, &to);
        int r = (int)sendto(udp->fd, (const char *)msgs[done].data, (int)msgs[done].length, 0,
                            (struct sockaddr *)&to, tl);
        if (r < 0) {
            if (sock_would_block())
                break;
            capture_error();
            *sent = done;
            return done ? MC_OK : MC_E_IO;
        }
    }
#endif
    *sent = done;
    return MC_OK;
}

mc_status mc_udp_send_to(mc_udp *udp, const uint8_t *data, uint32_t length, const mc_netaddr *to)
{
    if (!udp || (!data && length) || !to)
        return MC_E_INVAL;
    struct sockaddr_storage ss;
    socklen_t_ tl = to_sockaddr(to, udp->family, &ss);
    int r = (int)sendto(udp->fd, (const char *)data, (int)length, 0, (struct sockaddr *)&ss, tl);
    if (r < 0) {
        capture_error();
        return MC_E_IO;
    }
    return MC_OK;
}

mc_status mc_udp_wait(mc_udp *a, mc_udp *b, int64_t timeout_ns, uint32_t *ready)
{
    if (!a || !ready)
        return MC_E_INVAL;
    *ready = 0;
    int ms;
    if (timeout_ns < 0)
        ms = -1;
    else {
        int64_t m = (timeout_ns + 999999) / 1000000;
        ms = m > 1000000 ? 1000000 : (int)m;
    }
#if defined(MC_OS_WINDOWS)
    WSAPOLLFD fds[2];
    memset(fds, 0, sizeof fds);
    fds[0].fd = a->fd;
    fds[0].events = POLLRDNORM;
    ULONG n = 1;
    if (b) {
        fds[1].fd = b->fd;
        fds[1].events = POLLRDNORM;
        n = 2;
    }
    int r = WSAPoll(fds, n, ms);
#else
    struct pollfd fds[2];
    memset(fds, 0, sizeof fds);
    fds[0].fd = a->fd;
    fds[0].events = POLLIN;
    nfds_t n = 1;
    if (b) {
        fds[1].fd = b->fd;
        fds[1].events = POLLIN;
        n = 2;
    }
    int r = poll(fds, n, ms);
#endif
    if (r < 0) {
#if !defined(MC_OS_WINDOWS)
        if (errno == EINTR)
            return MC_E_TIMEOUT;
#endif
        capture_error();
        return MC_E_IO;
    }
    if (r == 0)
        return MC_E_TIMEOUT;
    if (fds[0].revents)
        *ready |= 1u;
    if (b && fds[1].revents)
        *ready |= 2u;
    return MC_OK;
}

void mc_udp_drain(mc_udp *udp)
{
    uint8_t buf[64];
    for (int i = 0; i < 1024; i++) {
        struct sockaddr_storage from;
        socklen_t_ fl = (socklen_t_)sizeof from;
        int r = (int)recvfrom(udp->fd, (char *)buf, (int)sizeof buf, 0, (struct sockaddr *)&from,
                              &fl);
        if (r < 0) {
#if defined(MC_OS_WINDOWS)
            if (WSAGetLastError() == WSAEMSGSIZE)
                continue;
#endif
            break;
        }
    }
}

int64_t mc_net_thread_cpu_ns(void)
{
#if defined(MC_OS_WINDOWS)
    FILETIME c, e, k, u;
    if (!GetThreadTimes(GetCurrentThread(), &c, &e, &k, &u))
        return 0;
    uint64_t kt = ((uint64_t)k.dwHighDateTime << 32) | k.dwLowDateTime;
    uint64_t ut = ((uint64_t)u.dwHighDateTime << 32) | u.dwLowDateTime;
    return (int64_t)((kt + ut) * 100u);
#else
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
#endif
}

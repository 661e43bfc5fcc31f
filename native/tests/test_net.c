/*
 * test_net.c — the portability layer on its own: UDP sockets (net.c: the
 * recvmmsg/sendmmsg batches on Linux, the recvfrom/sendto loop on Windows),
 * and compat.c's clock, threads and wait/wake. Built with -Werror, ASan/UBSan,
 * TSan, and with mingw-w64 (both atomics branches) run under wine, so the
 * Winsock paths run for real: truncated datagrams (WSAEMSGSIZE), the ICMP
 * port-unreachable reset (SIO_UDP_CONNRESET), dual-stack IPv6, WSAPoll
 * timeouts, WSAStartup reference counting from several threads, WaitOnAddress
 * with long timeouts. Real sockets on loopback only.
 *
 * Usage: test_net [rounds]   (rounds of the threaded open/close test)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "mediacore.h"
#include "check.h"
#include "net.h"

#define WAIT_NS 2000000000LL /* upper bound for anything to arrive on loopback */

static mc_udp *open_udp(const char *host)
{
    mc_netaddr a;
    mc_udp *u = NULL;
    CHECK_OK(mc_netaddr_parse(host, 0, &a));
    CHECK_OK(mc_udp_open(&a, 0, 0, &u));
    return u;
}

/* Receive until `want` datagrams arrived or WAIT_NS passed; returns the count. */
static uint32_t receive(mc_udp *u, mc_net_msg *msgs, uint32_t want)
{
    uint32_t got = 0;
    int64_t deadline = mc_now_ns() + WAIT_NS;
    while (got < want && mc_now_ns() < deadline) {
        uint32_t n = 0, ready = 0;
        mc_status st = mc_udp_recv_batch(u, msgs + got, want - got, &n);
        CHECK_OK(st);
        if (st != MC_OK)
            break;
        got += n;
        if (n == 0) {
            st = mc_udp_wait(u, NULL, 50000000, &ready);
            CHECK(st == MC_OK || st == MC_E_TIMEOUT);
        }
    }
    return got;
}

static void test_addresses(void)
{
    mc_netaddr a, b;
    char text[64];
    CHECK_OK(mc_netaddr_parse("127.0.0.1", 5004, &a));
    CHECK(a.family == MC_NET_AF_INET && a.port == 5004 && a.addr[0] == 127 && a.addr[3] == 1);
    CHECK_OK(mc_netaddr_format(&a, text, sizeof text));
    CHECK(strcmp(text, "127.0.0.1") == 0);
    CHECK_OK(mc_netaddr_parse("::1", 5004, &b));
    CHECK(b.family == MC_NET_AF_INET6 && b.addr[15] == 1);
    CHECK_OK(mc_netaddr_format(&b, text, sizeof text));
    CHECK(strcmp(text, "::1") == 0);
    CHECK(!mc_netaddr_equal(&a, &b));
    CHECK_OK(mc_netaddr_parse("127.0.0.1", 5004, &b));
    CHECK(mc_netaddr_equal(&a, &b));
    b.port = 5005;
    CHECK(!mc_netaddr_equal(&a, &b));
    CHECK_STATUS(mc_netaddr_parse("localhost", 1, &a), MC_E_INVAL);
    CHECK_STATUS(mc_netaddr_parse("300.1.1.1", 1, &a), MC_E_INVAL);
    CHECK_STATUS(mc_netaddr_parse("1.2.3.4:5", 1, &a), MC_E_INVAL);
}

/* Many datagrams of different lengths through the batch calls, in chunks the
 * socket buffers hold; every byte and the source address checked. */
static void test_batches(void)
{
    enum { TOTAL = 640, CHUNK = 32, CAP = 1500 };
    mc_udp *a = open_udp("127.0.0.1"), *b = open_udp("127.0.0.1");
    if (!a || !b)
        goto out;
    mc_netaddr la, lb;
    CHECK_OK(mc_udp_local(a, &la));
    CHECK_OK(mc_udp_local(b, &lb));
    CHECK(la.port != 0 && lb.port != 0 && la.port != lb.port);
    int32_t rcvbuf = 0;
    CHECK_OK(mc_udp_rcvbuf(b, &rcvbuf));
    CHECK(rcvbuf > 0);

    static uint8_t out[CHUNK][CAP], in[CHUNK][CAP];
    mc_net_msg tx[CHUNK], rx[CHUNK];
    uint32_t next = 0, received = 0;
    while (next < TOTAL) {
        for (uint32_t i = 0; i < CHUNK; i++) {
            uint32_t seq = next + i, len = 12 + (seq * 37) % (CAP - 12);
            for (uint32_t k = 0; k < len; k++)
                out[i][k] = (uint8_t)(seq * 131 + k);
            memcpy(out[i], &seq, 4);
            tx[i].data = out[i];
            tx[i].length = len;
            tx[i].capacity = CAP;
            tx[i].addr = lb;
        }
        uint32_t sent = 0;
        for (int tries = 0; sent < CHUNK && tries < 1000; tries++) {
            uint32_t n = 0;
            CHECK_OK(mc_udp_send_batch(a, tx + sent, CHUNK - sent, &n));
            sent += n;
            if (sent < CHUNK)
                mc_sleep_ns(1000000);
        }
        CHECK(sent == CHUNK);
        for (uint32_t i = 0; i < CHUNK; i++) {
            rx[i].data = in[i];
            rx[i].capacity = CAP;
            rx[i].length = 0;
        }
        uint32_t got = receive(b, rx, CHUNK);
        CHECK(got == CHUNK);
        for (uint32_t i = 0; i < got; i++) {
            uint32_t seq;
            memcpy(&seq, in[i], 4);
            uint32_t len = 12 + (seq * 37) % (CAP - 12);
            CHECK(seq == next + i); /* loopback keeps the order */
            CHECK(rx[i].length == len);
            CHECK(mc_netaddr_equal(&rx[i].addr, &la));
            int same = 1;
            for (uint32_t k = 4; k < len && k < rx[i].length; k++)
                same &= in[i][k] == (uint8_t)(seq * 131 + k);
            CHECK(same);
        }
        received += got;
        next += CHUNK;
    }
    CHECK(received == TOTAL);

    /* nothing pending: MC_OK with 0, and a bounded wait times out */
    uint32_t n = 99, ready = 99;
    CHECK_OK(mc_udp_recv_batch(b, rx, CHUNK, &n));
    CHECK(n == 0);
    int64_t t0 = mc_now_ns();
    CHECK_STATUS(mc_udp_wait(b, a, 30000000, &ready), MC_E_TIMEOUT);
    CHECK(ready == 0);
    CHECK(mc_now_ns() - t0 >= 15000000); /* it waited rather than returning at once */

    /* readiness names the right socket */
    uint8_t one = 7;
    CHECK_OK(mc_udp_send_to(b, &one, 1, &la));
    CHECK_OK(mc_udp_wait(b, a, WAIT_NS, &ready));
    CHECK(ready == 2u);
    mc_udp_drain(a);
    CHECK_OK(mc_udp_recv_batch(a, rx, CHUNK, &n));
    CHECK(n == 0);
out:
    mc_udp_close(a);
    mc_udp_close(b);
}

/* A datagram larger than the buffer is flagged (length = capacity + 1) and the
 * batch goes on with the next one (Windows: recvfrom fails with WSAEMSGSIZE). */
static void test_truncation(void)
{
    mc_udp *a = open_udp("127.0.0.1"), *b = open_udp("127.0.0.1");
    if (!a || !b)
        goto out;
    mc_netaddr lb;
    CHECK_OK(mc_udp_local(b, &lb));
    static uint8_t big[1400], small[3] = {1, 2, 3};
    memset(big, 0xab, sizeof big);
    CHECK_OK(mc_udp_send_to(a, big, sizeof big, &lb));
    CHECK_OK(mc_udp_send_to(a, small, sizeof small, &lb));
    CHECK_OK(mc_udp_send_to(a, big, 100, &lb));
    uint8_t buf[3][200];
    mc_net_msg rx[3];
    for (int i = 0; i < 3; i++) {
        rx[i].data = buf[i];
        rx[i].capacity = sizeof buf[i];
        rx[i].length = 0;
    }
    uint32_t got = receive(b, rx, 3);
    CHECK(got == 3);
    CHECK(rx[0].length == rx[0].capacity + 1);
    CHECK(buf[0][0] == 0xab && buf[0][199] == 0xab);
    CHECK(rx[1].length == 3 && memcmp(buf[1], small, 3) == 0);
    CHECK(rx[2].length == 100 && buf[2][99] == 0xab);
out:
    mc_udp_close(a);
    mc_udp_close(b);
}

/* Sending to a port nobody listens on makes loopback answer with ICMP port
 * unreachable; the next receive must not fail (Linux: ECONNREFUSED on the
 * socket; Windows: WSAECONNRESET unless SIO_UDP_CONNRESET is off). */
static void test_port_unreachable(void)
{
    mc_udp *a = open_udp("127.0.0.1"), *b = open_udp("127.0.0.1"), *gone = open_udp("127.0.0.1");
    if (!a || !b || !gone) {
        mc_udp_close(gone);
        goto out;
    }
    mc_netaddr la, lgone;
    CHECK_OK(mc_udp_local(a, &la));
    CHECK_OK(mc_udp_local(gone, &lgone));
    mc_udp_close(gone);
    uint8_t ping[4] = {9, 9, 9, 9};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(mc_udp_send_to(a, ping, sizeof ping, &lgone));
        mc_sleep_ns(2000000);
    }
    /* the send path goes on too: a batch to the dead port then the live one */
    mc_net_msg tx[2];
    tx[0].data = ping;
    tx[0].length = sizeof ping;
    tx[0].capacity = sizeof ping;
    tx[0].addr = lgone;
    mc_netaddr lb;
    CHECK_OK(mc_udp_local(b, &lb));
    tx[1] = tx[0];
    tx[1].addr = lb;
    uint32_t sent = 0;
    CHECK_OK(mc_udp_send_batch(a, tx, 2, &sent));
    CHECK(sent == 2);
    uint8_t data[16], pong[5] = {1, 2, 3, 4, 5};
    mc_net_msg rx;
    rx.data = data;
    rx.capacity = sizeof data;
    rx.length = 0;
    CHECK(receive(b, &rx, 1) == 1);
    CHECK_OK(mc_udp_send_to(b, pong, sizeof pong, &la));
    CHECK(receive(a, &rx, 1) == 1);
    CHECK(rx.length == sizeof pong && memcmp(data, pong, sizeof pong) == 0);
out:
    mc_udp_close(a);
    mc_udp_close(b);
}

/* A socket bound to "::" takes IPv4 peers (v4-mapped, reported as IPv4) and
 * IPv6 peers; replies go back to both. */
static void test_dual_stack(void)
{
    mc_netaddr any6;
    mc_udp *d = NULL;
    CHECK_OK(mc_netaddr_parse("::", 0, &any6));
    CHECK_OK(mc_udp_open(&any6, 0, 0, &d));
    mc_udp *v4 = open_udp("127.0.0.1"), *v6 = open_udp("::1");
    if (!d || !v4 || !v6)
        goto out;
    mc_netaddr ld, l4, l6, to;
    CHECK_OK(mc_udp_local(d, &ld));
    CHECK(ld.family == MC_NET_AF_INET6);
    CHECK_OK(mc_udp_local(v4, &l4));
    CHECK_OK(mc_udp_local(v6, &l6));
    uint8_t m4[2] = {4, 4}, m6[2] = {6, 6}, data[2][8];
    CHECK_OK(mc_netaddr_parse("127.0.0.1", ld.port, &to));
    CHECK_OK(mc_udp_send_to(v4, m4, 2, &to));
    mc_net_msg rx[2];
    for (int i = 0; i < 2; i++) {
        rx[i].data = data[i];
        rx[i].capacity = sizeof data[i];
        rx[i].length = 0;
    }
    CHECK(receive(d, rx, 1) == 1);
    CHECK(rx[0].addr.family == MC_NET_AF_INET && rx[0].addr.port == l4.port && data[0][0] == 4);
    CHECK_OK(mc_netaddr_parse("::1", ld.port, &to));
    CHECK_OK(mc_udp_send_to(v6, m6, 2, &to));
    CHECK(receive(d, rx + 1, 1) == 1);
    CHECK(rx[1].addr.family == MC_NET_AF_INET6 && rx[1].addr.port == l6.port && data[1][0] == 6);
    /* replies to the addresses as received */
    CHECK_OK(mc_udp_send_to(d, m6, 2, &rx[1].addr));
    CHECK_OK(mc_udp_send_to(d, m4, 2, &rx[0].addr));
    CHECK(receive(v6, rx, 1) == 1 && data[0][0] == 6);
    CHECK(receive(v4, rx, 1) == 1 && data[0][0] == 4);
out:
    mc_udp_close(d);
    mc_udp_close(v4);
    mc_udp_close(v6);
}

/* Sockets opened and closed from several threads at once: the process-wide
 * set-up (WSAStartup on Windows) is reference counted, so every open must
 * succeed and every socket must work, whatever the interleaving. */
typedef struct churn_arg {
    int rounds;
    int errors;
} churn_arg;

static void churn_main(void *p)
{
    churn_arg *c = (churn_arg *)p;
    mc_netaddr lo;
    mc_netaddr_parse("127.0.0.1", 0, &lo);
    for (int i = 0; i < c->rounds; i++) {
        mc_udp *u = NULL, *v = NULL;
        if (mc_udp_open(&lo, 65536, 65536, &u) != MC_OK) {
            c->errors++;
            continue;
        }
        mc_netaddr lu;
        uint8_t x = (uint8_t)i;
        if (mc_udp_open(&lo, 65536, 65536, &v) != MC_OK || mc_udp_local(u, &lu) != MC_OK ||
            mc_udp_send_to(v, &x, 1, &lu) != MC_OK)
            c->errors++;
        mc_udp_close(v);
        mc_udp_close(u);
    }
}

static void test_open_close_threads(int rounds)
{
    enum { THREADS = 4 };
    mc_thread t[THREADS];
    churn_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i].rounds = rounds;
        args[i].errors = 0;
        CHECK_OK(mc_thread_start(&t[i], churn_main, &args[i]));
    }
    for (int i = 0; i < THREADS; i++) {
        mc_thread_join(&t[i]);
        CHECK(args[i].errors == 0);
    }
}

/* ---- compat.c: clock, wait/wake, mutex ------------------------------------------ */

typedef struct waker {
    volatile uint32_t word;
    int shared;
    int64_t delay_ns;
    mc_mutex mutex;
    uint64_t counter;
} waker;

static void waker_main(void *p)
{
    waker *w = (waker *)p;
    mc_sleep_ns(w->delay_ns);
    mc_store_u32_seq_cst(&w->word, 1);
    mc_wake_u32(&w->word, w->shared);
}

static void test_wait_wake(void)
{
    for (int shared = 0; shared < 2; shared++) {
        waker w;
        memset(&w, 0, sizeof w);
        w.shared = shared;
        w.delay_ns = 20000000;
        mc_thread t;
        CHECK_OK(mc_thread_start(&t, waker_main, &w));
        /* a long timeout (beyond 2^32 ms, which must not wrap to "no wait")
         * that only the wake ends */
        int64_t t0 = mc_now_ns();
        mc_status st = MC_OK;
        while (mc_load_u32_acquire(&w.word) == 0) {
            st = mc_wait_u32(&w.word, 0, (int64_t)5000000 * 1000000000LL, shared);
            if (st != MC_OK)
                break;
        }
        CHECK_OK(st);
        CHECK(mc_load_u32_acquire(&w.word) == 1);
        CHECK(mc_now_ns() - t0 < 60LL * 1000000000LL);
        mc_thread_join(&t);
        /* the value already differs: no sleep */
        CHECK_OK(mc_wait_u32(&w.word, 0, 1000000000LL, shared));
        /* a short timeout expires */
        t0 = mc_now_ns();
        CHECK_STATUS(mc_wait_u32(&w.word, 1, 20000000, shared), MC_E_TIMEOUT);
        CHECK(mc_now_ns() - t0 >= 10000000);
    }
    /* a timeout of exactly 2^32 ms: cut to 32 bits it would be 0 ms (no wait) */
    waker w2;
    memset(&w2, 0, sizeof w2);
    w2.delay_ns = 30000000;
    mc_thread t;
    CHECK_OK(mc_thread_start(&t, waker_main, &w2));
    CHECK_OK(mc_wait_u32(&w2.word, 0, (int64_t)4294967296LL * 1000000LL, 0));
    mc_thread_join(&t);
}

static void counter_main(void *p)
{
    waker *w = (waker *)p;
    for (int i = 0; i < 100000; i++) {
        mc_mutex_lock(&w->mutex);
        w->counter++;
        mc_mutex_unlock(&w->mutex);
    }
}

static void test_clock_threads_mutex(void)
{
    int64_t prev = mc_now_ns(), first = prev;
    int monotonic = 1;
    for (int i = 0; i < 100000; i++) {
        int64_t now = mc_now_ns();
        monotonic &= now >= prev;
        prev = now;
    }
    CHECK(monotonic);
    mc_sleep_ns(5000000);
    CHECK(mc_now_ns() - first >= 4000000);

    waker w;
    memset(&w, 0, sizeof w);
    mc_mutex_init(&w.mutex);
    mc_thread t[3];
    for (int i = 0; i < 3; i++)
        CHECK_OK(mc_thread_start(&t[i], counter_main, &w));
    for (int i = 0; i < 3; i++)
        mc_thread_join(&t[i]);
    CHECK(w.counter == 300000);
    mc_mutex_destroy(&w.mutex);

    /* thread CPU time moves while this thread computes */
    int64_t c0 = mc_net_thread_cpu_ns();
    volatile uint64_t x = 1;
    int64_t until = mc_now_ns() + 50000000;
    while (mc_now_ns() < until)
        for (int i = 0; i < 1000; i++)
            x = x * 6364136223846793005ull + 1;
    int64_t c1 = mc_net_thread_cpu_ns();
    CHECK(c1 > c0 && c0 >= 0);

    void *p = mc_aligned_alloc(64, 1000);
    CHECK(p != NULL && ((uintptr_t)p & 63) == 0);
    mc_aligned_free(p);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    test_addresses();
    test_batches();
    test_truncation();
    test_port_unreachable();
    test_dual_stack();
    test_open_close_threads(rounds);
    test_wait_wake();
    test_clock_threads_mutex();
    if (failures) {
        fprintf(stderr, "test_net: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_net: ok\n");
    return 0;
}

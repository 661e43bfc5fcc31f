/*
 * compat.c — clock, sleep, wait/wake, threads, mutexes and aligned memory on
 * Linux, other POSIX systems and Windows (MSVC or mingw-w64).
 */
#if !defined(_WIN32) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif

#include "compat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(MC_OS_WINDOWS)
#include <process.h>
#include <synchapi.h>
#else
#include <time.h>
#include <unistd.h>
#if defined(MC_OS_LINUX)
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#endif
#endif

#if defined(_MSC_VER)
#define MC_THREAD_LOCAL __declspec(thread)
#else
#define MC_THREAD_LOCAL _Thread_local
#endif

static MC_THREAD_LOCAL int32_t tls_os_error;

void mc_set_os_error(int32_t code) { tls_os_error = code; }

void mc_capture_os_error(void)
{
#if defined(MC_OS_WINDOWS)
    tls_os_error = (int32_t)GetLastError();
#else
    tls_os_error = errno;
#endif
}

MC_API int32_t mc_last_os_error(void) { return tls_os_error; }

/* ---- clock ---------------------------------------------------------------- */

#if defined(MC_OS_WINDOWS)
static int64_t qpc_frequency(void)
{
    static volatile int64_t cached; /* benign race: every thread computes the same value */
    int64_t f = cached;
    if (f == 0) {
        LARGE_INTEGER li;
        QueryPerformanceFrequency(&li);
        f = li.QuadPart;
        cached = f;
    }
    return f;
}

/* A non-negative duration in ns as a Win32 timeout in ms, rounded up and
 * capped below INFINITE: a plain (DWORD) cast wraps every 2^32 ms (~49.7 days),
 * so a long wait would become a short one or no wait at all. */
static DWORD ms_for_win32(int64_t ns)
{
    int64_t ms = ns / 1000000 + (ns % 1000000 != 0);
    return ms >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)ms;
}
#endif

MC_API int64_t mc_now_ns(void)
{
#if defined(MC_OS_WINDOWS)
    LARGE_INTEGER li;
    int64_t f = qpc_frequency();
    QueryPerformanceCounter(&li);
    /* split to avoid overflow of ticks * 1e9 */
    return (li.QuadPart / f) * 1000000000LL + ((li.QuadPart % f) * 1000000000LL) / f;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
#endif
}

MC_API void mc_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
#if defined(MC_OS_WINDOWS)
    /* Sleep() has 1 ms granularity at best; a waitable high-resolution timer
     * would be finer but is not needed by any caller so far. */
    Sleep(ms_for_win32(ns));
#else
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
#endif
}

/* ---- wait / wake ----------------------------------------------------------- */

/* Portable fallback: re-check the word with a sleep that grows from 20 us to
 * 1 ms. Used across processes on Windows and on non-Linux POSIX systems. */
#if defined(MC_WAIT_FALLBACK) || defined(MC_OS_POSIX) || defined(MC_OS_WINDOWS)
#define MC_HAVE_WAIT_POLLING 1
static mc_status wait_polling(volatile uint32_t *addr, uint32_t expected, int64_t timeout_ns)
{
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : mc_now_ns() + timeout_ns;
    int64_t pause = 20000;
    for (;;) {
        if (mc_load_u32_acquire(addr) != expected)
            return MC_OK;
        int64_t now = mc_now_ns();
        if (now >= deadline)
            return MC_E_TIMEOUT;
        int64_t left = deadline - now;
        mc_sleep_ns(pause < left ? pause : left);
        if (pause < 1000000)
            pause *= 2;
    }
}
#endif

mc_status mc_wait_u32(volatile uint32_t *addr, uint32_t expected, int64_t timeout_ns, int shared)
{
#if defined(MC_WAIT_FALLBACK) || defined(MC_OS_POSIX)
    (void)shared;
    return wait_polling(addr, expected, timeout_ns);
#elif defined(MC_OS_LINUX)
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
        ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
        tsp = &ts;
    }
    int op = shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE;
    long r = syscall(SYS_futex, (uint32_t *)addr, op, expected, tsp, NULL, 0);
    if (r == 0 || errno == EAGAIN || errno == EINTR)
        return MC_OK;
    if (errno == ETIMEDOUT)
        return MC_E_TIMEOUT;
    mc_capture_os_error();
    return MC_E_IO;
#else /* Windows */
    if (shared)
        return wait_polling(addr, expected, timeout_ns);
    DWORD ms = INFINITE;
    if (timeout_ns >= 0)
        ms = ms_for_win32(timeout_ns);
    uint32_t cmp = expected;
    if (WaitOnAddress((volatile VOID *)addr, &cmp, sizeof cmp, ms))
        return MC_OK;
    if (GetLastError() == ERROR_TIMEOUT)
        return MC_E_TIMEOUT;
    mc_capture_os_error();
    return MC_E_IO;
#endif
}

void mc_wake_u32(volatile uint32_t *addr, int shared)
{
#if defined(MC_WAIT_FALLBACK) || defined(MC_OS_POSIX)
    (void)addr;
    (void)shared;
#elif defined(MC_OS_LINUX)
    syscall(SYS_futex, (uint32_t *)addr, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
#else
    if (!shared)
        WakeByAddressSingle((PVOID)addr);
#endif
}

/* ---- threads --------------------------------------------------------------- */

typedef struct thread_start {
    mc_thread_fn fn;
    void *arg;
} thread_start;

#if defined(MC_OS_WINDOWS)
static unsigned __stdcall thread_trampoline(void *p)
{
    thread_start s = *(thread_start *)p;
    free(p);
    s.fn(s.arg);
    return 0;
}
#else
static void *thread_trampoline(void *p)
{
    thread_start s = *(thread_start *)p;
    free(p);
    s.fn(s.arg);
    return NULL;
}
#endif

mc_status mc_thread_start(mc_thread *thread, mc_thread_fn fn, void *arg)
{
    thread_start *s = (thread_start *)malloc(sizeof *s);
    if (!s)
        return MC_E_NOMEM;
    s->fn = fn;
    s->arg = arg;
#if defined(MC_OS_WINDOWS)
    uintptr_t h = _beginthreadex(NULL, 0, thread_trampoline, s, 0, NULL);
    if (h == 0) {
        mc_capture_os_error();
        free(s);
        return MC_E_IO;
    }
    thread->handle = (HANDLE)h;
#else
    int r = pthread_create(&thread->handle, NULL, thread_trampoline, s);
    if (r != 0) {
        mc_set_os_error(r);
        free(s);
        return MC_E_IO;
    }
#endif
    return MC_OK;
}

void mc_thread_join(mc_thread *thread)
{
#if defined(MC_OS_WINDOWS)
    WaitForSingleObject(thread->handle, INFINITE);
    CloseHandle(thread->handle);
#else
    pthread_join(thread->handle, NULL);
#endif
}

/* ---- mutexes ---------------------------------------------------------------- */

void mc_mutex_init(mc_mutex *m)
{
#if defined(MC_OS_WINDOWS)
    InitializeSRWLock(&m->lock);
#else
    pthread_mutex_init(&m->lock, NULL);
#endif
}

void mc_mutex_destroy(mc_mutex *m)
{
#if defined(MC_OS_WINDOWS)
    (void)m;
#else
    pthread_mutex_destroy(&m->lock);
#endif
}

void mc_mutex_lock(mc_mutex *m)
{
#if defined(MC_OS_WINDOWS)
    AcquireSRWLockExclusive(&m->lock);
#else
    pthread_mutex_lock(&m->lock);
#endif
}

void mc_mutex_unlock(mc_mutex *m)
{
#if defined(MC_OS_WINDOWS)
    ReleaseSRWLockExclusive(&m->lock);
#else
    pthread_mutex_unlock(&m->lock);
#endif
}

/* ---- aligned memory ------------------------------------------------------------ */

void *mc_aligned_alloc(size_t alignment, size_t size)
{
#if defined(MC_OS_WINDOWS)
    return _aligned_malloc(size, alignment);
#else
    void *p = NULL;
    if (posix_memalign(&p, alignment, size) != 0)
        return NULL;
    return p;
#endif
}

void *mc_large_alloc(size_t prefix, size_t size, mc_large_block *block)
{
    block->base = NULL;
    block->length = 0;
    if (prefix > 4096)
        return NULL;
#if defined(MC_OS_LINUX) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (size >= huge) {
        size_t rounded = (size + huge - 1) & ~(huge - 1);
        /* room to put the area on a 2 MiB boundary with a page before it for the prefix */
        size_t length = rounded + 2 * huge;
        void *m = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            uintptr_t start = ((uintptr_t)m + 4096 + huge - 1) & ~(uintptr_t)(huge - 1);
            uint8_t *area = (uint8_t *)start;
            (void)madvise(area, rounded, MADV_HUGEPAGE); /* a hint: 4 KiB pages if refused */
            block->base = m;
            block->length = length;
            return area - prefix;
        }
    }
#endif
    void *p = mc_aligned_alloc(4096, prefix + size);
    block->base = p;
    return p;
}

void mc_large_free(mc_large_block *block)
{
    if (!block->base)
        return;
#if defined(MC_OS_LINUX) && defined(MADV_HUGEPAGE)
    if (block->length) {
        (void)munmap(block->base, block->length);
        block->base = NULL;
        return;
    }
#endif
    mc_aligned_free(block->base);
    block->base = NULL;
}

void mc_aligned_free(void *p)
{
#if defined(MC_OS_WINDOWS)
    _aligned_free(p);
#else
    free(p);
#endif
}

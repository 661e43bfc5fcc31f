/*
 * compat.h — the only place that knows which OS and compiler we are on.
 *
 * Atomics: GCC/Clang __atomic builtins, or MSVC Interlocked functions and volatile
 * (selected by _MSC_VER, or forced with MC_ATOMICS_INTERLOCKED so that the
 * MSVC branch is exercised by mingw-w64 in CI). No <stdatomic.h>: MSVC's C
 * mode does not provide it in the versions we support.
 * Threads, mutexes, the monotonic clock, wait/wake on a 32-bit word, and UDP
 * sockets live in compat.c / net.c behind the declarations below.
 */
#ifndef MC_COMPAT_H
#define MC_COMPAT_H

#include <stddef.h>
#include <stdint.h>

#include "mediacore.h"

#if defined(_WIN32)
#define MC_OS_WINDOWS 1
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <pthread.h>
#if defined(__linux__)
#define MC_OS_LINUX 1
#else
#define MC_OS_POSIX 1
#endif
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#define MC_INLINE static __forceinline
#define MC_ALIGNED(n) __declspec(align(n))
#define MC_UNUSED
#define MC_LIKELY(x) (x)
#define MC_UNLIKELY(x) (x)
#else
#define MC_INLINE static inline __attribute__((always_inline))
#define MC_ALIGNED(n) __attribute__((aligned(n)))
#define MC_UNUSED __attribute__((unused))
#define MC_LIKELY(x) __builtin_expect(!!(x), 1)
#define MC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#endif

#define MC_CACHE_LINE 64

#if defined(_MSC_VER) || defined(__cplusplus)
#define MC_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define MC_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* ---- atomics ------------------------------------------------------------
 * Every shared word is accessed only through these. Naming: _relaxed (no
 * ordering), _acquire (later accesses stay after), _release (earlier
 * accesses stay before), _seq_cst (one total order over all seq_cst
 * accesses: what a Dekker-style "publish, then look for a sleeper" needs;
 * we use it instead of standalone fences, which ThreadSanitizer cannot model). */
#if defined(_MSC_VER) || defined(MC_ATOMICS_INTERLOCKED)
#include <intrin.h>
#if defined(_MSC_VER) && !defined(__clang__)
#define MC_COMPILER_BARRIER() _ReadWriteBarrier()
#else
#define MC_COMPILER_BARRIER() __asm__ __volatile__("" ::: "memory")
#endif
#if !(defined(_M_X64) || defined(_M_IX86) || defined(__x86_64__) || defined(__i386__))
#error "Interlocked atomics shim: only x86/x64 (TSO) targets are supported; add __ldar/__stlr for ARM64"
#endif
/* On x86/x64 (TSO) plain aligned loads are acquire and plain stores are
 * release at the hardware level; the compiler barrier stops reordering. */
MC_INLINE uint64_t mc_load_u64_relaxed(const volatile uint64_t *p) { return *p; }
MC_INLINE uint64_t mc_load_u64_acquire(const volatile uint64_t *p)
{
    uint64_t v = *p;
    MC_COMPILER_BARRIER();
    return v;
}
MC_INLINE void mc_store_u64_relaxed(volatile uint64_t *p, uint64_t v) { *p = v; }
MC_INLINE void mc_store_u64_release(volatile uint64_t *p, uint64_t v)
{
    MC_COMPILER_BARRIER();
    *p = v;
}
MC_INLINE uint32_t mc_load_u32_relaxed(const volatile uint32_t *p) { return *p; }
MC_INLINE uint32_t mc_load_u32_acquire(const volatile uint32_t *p)
{
    uint32_t v = *p;
    MC_COMPILER_BARRIER();
    return v;
}
MC_INLINE void mc_store_u32_relaxed(volatile uint32_t *p, uint32_t v) { *p = v; }
MC_INLINE void mc_store_u32_release(volatile uint32_t *p, uint32_t v)
{
    MC_COMPILER_BARRIER();
    *p = v;
}
MC_INLINE uint32_t mc_fetch_add_u32(volatile uint32_t *p, uint32_t v)
{
    return (uint32_t)InterlockedExchangeAdd((volatile LONG *)p, (LONG)v);
}
MC_INLINE uint64_t mc_fetch_add_u64(volatile uint64_t *p, uint64_t v)
{
    return (uint64_t)InterlockedExchangeAdd64((volatile LONG64 *)p, (LONG64)v);
}
MC_INLINE int mc_cas_u32(volatile uint32_t *p, uint32_t expected, uint32_t desired)
{
    return (uint32_t)InterlockedCompareExchange((volatile LONG *)p, (LONG)desired, (LONG)expected) ==
           expected;
}
/* seq_cst store = locked exchange (a full barrier on x86); seq_cst load = plain
 * load, since every seq_cst store already drains the store buffer. */
MC_INLINE void mc_store_u64_seq_cst(volatile uint64_t *p, uint64_t v)
{
    InterlockedExchange64((volatile LONG64 *)p, (LONG64)v);
}
MC_INLINE uint64_t mc_load_u64_seq_cst(const volatile uint64_t *p) { return mc_load_u64_acquire(p); }
MC_INLINE void mc_store_u32_seq_cst(volatile uint32_t *p, uint32_t v)
{
    InterlockedExchange((volatile LONG *)p, (LONG)v);
}
MC_INLINE uint32_t mc_load_u32_seq_cst(const volatile uint32_t *p) { return mc_load_u32_acquire(p); }
MC_INLINE void mc_cpu_relax(void) { YieldProcessor(); }
#else
MC_INLINE uint64_t mc_load_u64_relaxed(const volatile uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
MC_INLINE uint64_t mc_load_u64_acquire(const volatile uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
MC_INLINE void mc_store_u64_relaxed(volatile uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
MC_INLINE void mc_store_u64_release(volatile uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
MC_INLINE uint32_t mc_load_u32_relaxed(const volatile uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}
MC_INLINE uint32_t mc_load_u32_acquire(const volatile uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
MC_INLINE void mc_store_u32_relaxed(volatile uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}
MC_INLINE void mc_store_u32_release(volatile uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
MC_INLINE uint32_t mc_fetch_add_u32(volatile uint32_t *p, uint32_t v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
MC_INLINE uint64_t mc_fetch_add_u64(volatile uint64_t *p, uint64_t v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
MC_INLINE int mc_cas_u32(volatile uint32_t *p, uint32_t expected, uint32_t desired)
{
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
MC_INLINE void mc_store_u64_seq_cst(volatile uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}
MC_INLINE uint64_t mc_load_u64_seq_cst(const volatile uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
MC_INLINE void mc_store_u32_seq_cst(volatile uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}
MC_INLINE uint32_t mc_load_u32_seq_cst(const volatile uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
MC_INLINE void mc_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
#endif

/* ---- wait / wake on a 32-bit word -----------------------------------------
 * mc_wait_u32 sleeps while *addr == expected, up to timeout_ns (< 0: forever).
 * Returns MC_OK when woken or the value differs (spurious wake-ups allowed:
 * callers re-check their condition), MC_E_TIMEOUT otherwise.
 * `shared` selects primitives that work across processes. Linux: futex
 * (private or shared). Windows: WaitOnAddress in-process; across processes it
 * falls back to polling with a short, growing sleep. MC_WAIT_FALLBACK forces the
 * polling fallback everywhere (other POSIX systems use it too). */
mc_status mc_wait_u32(volatile uint32_t *addr, uint32_t expected, int64_t timeout_ns, int shared);
void mc_wake_u32(volatile uint32_t *addr, int shared);

/* ---- threads and locks ------------------------------------------------- */
typedef struct mc_thread {
#if defined(MC_OS_WINDOWS)
    HANDLE handle;
#else
    pthread_t handle;
#endif
} mc_thread;

typedef void (*mc_thread_fn)(void *arg);
mc_status mc_thread_start(mc_thread *thread, mc_thread_fn fn, void *arg);
void mc_thread_join(mc_thread *thread);

typedef struct mc_mutex {
#if defined(MC_OS_WINDOWS)
    SRWLOCK lock;
#else
    pthread_mutex_t lock;
#endif
} mc_mutex;

void mc_mutex_init(mc_mutex *mutex);
void mc_mutex_destroy(mc_mutex *mutex);
void mc_mutex_lock(mc_mutex *mutex);
void mc_mutex_unlock(mc_mutex *mutex);

/* ---- memory ------------------------------------------------------------- */
void *mc_aligned_alloc(size_t alignment, size_t size);
void mc_aligned_free(void *p);
/* `prefix` bytes (at most 4 KiB, 64-byte aligned) followed by a large area
 * of `size` bytes that several threads stream through (a ring's header and
 * data). On Linux an area of 2 MiB or more starts on a 2 MiB boundary and is
 * backed by transparent huge pages, so walking it costs a TLB entry per
 * 2 MiB instead of per 4 KiB (the prefix sits on the 4 KiB page before it,
 * so it does not commit a huge page of its own). Such an area is a mapping of
 * its own (mmap), returned to the system whole by mc_large_free: from the C
 * heap, freed huge-page blocks stayed in the allocator's pools, still backed
 * by huge pages, and a process churning calls grew by ~15 MiB a minute.
 * Returns the prefix's address; release *block with mc_large_free. */
typedef struct mc_large_block {
    void *base;        /* what to release */
    size_t length;     /* 0: a heap block (mc_aligned_free), else the mapping's length */
} mc_large_block;
void *mc_large_alloc(size_t prefix, size_t size, mc_large_block *block);
void mc_large_free(mc_large_block *block);

/* ---- errors ------------------------------------------------------------- */
void mc_set_os_error(int32_t code);
void mc_capture_os_error(void); /* remembers errno / GetLastError() */

#endif /* MC_COMPAT_H */

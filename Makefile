# mediabot — developer entry points. `make test` and `make demo` work on a fresh
# Debian/Ubuntu machine: they install what is missing (scripts/bootstrap.sh).

PYTHON  ?= .venv/bin/python
CC      ?= gcc
MINGW   ?= x86_64-w64-mingw32-gcc
CWARN   := -std=c11 -Wall -Wextra -Werror
NATIVE_INC := -Inative/include -Inative/src -Inative/tests/support
# native/tests/support: helpers for the C tests and benchmarks (testing.h), kept
# out of the shipped library; TEST_SUPPORT_SRC are those the C tests link
TEST_SUPPORT_SRC := native/tests/support/selftest.c native/tests/support/jitter_bench.c
RING_SRC := native/src/compat.c native/src/ring.c native/tests/support/selftest.c native/src/status.c
BUILD   := build/native
OPUS_CFLAGS := $(shell pkg-config --cflags opus 2>/dev/null)
AUDIO_SRC := native/src/compat.c native/src/status.c native/src/mixer.c native/src/opus_codec.c \
        native/src/g711.c native/src/resample.c native/src/audio_codec.c native/src/dtmf.c \
        native/src/audiolevel.c
AUDIO_LIBS := -lopus -lm -lpthread
AUDIOGRAPH_SRC := $(AUDIO_SRC) native/src/ring.c native/src/net.c native/src/audiograph.c

.PHONY: all bootstrap build test pytest native-check native-werror native-asan native-tsan \
        native-win native-win-compile native-srtp fuzz-srtp bench bench-quick demo fuzz clean native-audio fuzz-audio

all: build

bootstrap: .venv/.bootstrapped

.venv/.bootstrapped: pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

build: bootstrap
	$(PYTHON) native/build.py

test: build native-check pytest

# lint: ruff (lint rules and the formatter's check) and mypy over the two packages
.PHONY: lint
lint: bootstrap
	$(PYTHON) -m ruff check bot mediacore
	$(PYTHON) -m ruff format --check bot mediacore
	$(PYTHON) -m mypy

pytest: build
	$(PYTHON) -m pytest -q

# ---- native checks (C level, no Python) ----------------------------------
native-check: native-werror native-asan native-tsan native-win native-srtp fuzz-srtp native-audio fuzz-audio

$(BUILD):
	mkdir -p $(BUILD)

native-werror: | $(BUILD)
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(RING_SRC) native/tests/test_ring.c -o $(BUILD)/test_ring -lpthread
	$(BUILD)/test_ring 500000

native-asan: | $(BUILD)
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(RING_SRC) native/tests/test_ring.c -o $(BUILD)/test_ring_asan -lpthread
	$(BUILD)/test_ring_asan 300000

native-tsan: | $(BUILD)
	$(CC) $(CWARN) -O1 -g -fsanitize=thread $(NATIVE_INC) $(RING_SRC) native/tests/test_ring.c \
	    -o $(BUILD)/test_ring_tsan -lpthread
	TSAN_OPTIONS=halt_on_error=1 setarch -R $(BUILD)/test_ring_tsan 200000

# ---- Windows: mingw-w64 builds run under wine (docs/engine.md, "Windows") ----
# scripts/win-deps.sh cross-builds static libcrypto and libopus from Debian's
# source packages and stages CPython's Windows headers plus a python3.dll import
# library, once: cached in ~/.cache/mediabot/win-deps (cold: a few minutes).
#   native-win-compile  every native/src/*.c with mingw -Werror, both atomics
#                       branches (MC_ATOMICS_INTERLOCKED = the MSVC branch), into
#                       two static libraries of the whole core; every
#                       native/tests/support/*.c too (the testing module's
#                       helpers; those the C tests link, TEST_SUPPORT_SRC, into
#                       libmctesting)
#   native-win-link     every native/tests/test_*.c linked against the core,
#                       libcrypto and libopus (both branches); the cffi module
#                       linked as an abi3 .pyd; imported DLLs checked
#   native-win-run      every test .exe run under wine in a lo-only netns
WIN := $(BUILD)/win
WIN_DEPS := $(BUILD)/win-deps
MINGW_AR ?= x86_64-w64-mingw32-ar
MINGW_OBJDUMP ?= x86_64-w64-mingw32-objdump
WIN_CFLAGS := $(CWARN) -O2 $(NATIVE_INC) -isystem $(WIN_DEPS)/include -isystem $(WIN_DEPS)/include/opus
WIN_LIBS := -L$(WIN_DEPS)/lib -lopus -lcrypto -lsynchronization -lws2_32 -lbcrypt -ladvapi32 -luser32
WIN_TESTS := $(sort $(basename $(notdir $(wildcard native/tests/test_*.c))))
# DLLs a build may import: the C runtime, Windows itself (USER32 and ADVAPI32
# come from OpenSSL), Winsock; the .pyd also python3.dll (the stable ABI)
WIN_DLLS := KERNEL32|msvcrt|api-ms-win-core-synch-l1-2-0|WS2_32|ADVAPI32|USER32|bcrypt
# arguments per test under wine (the default of some is sized for native speed)
WIN_ARGS_test_ring := 200000
WIN_ARGS_test_h264_rtp := 300
WIN_ARGS_test_rtp := 20000
WIN_ARGS_test_rtcp := 500
WIN_ARGS_test_engine := 100
WIN_ARGS_test_net := 200
.PHONY: win-deps native-win-link native-win-run

win-deps: bootstrap
	bash scripts/win-deps.sh $(WIN_DEPS) >/dev/null

native-win-compile: win-deps | $(BUILD)
	rm -rf $(WIN) && mkdir -p $(WIN)/obj $(WIN)/obj-il
	ls native/src/*.c | xargs -P 2 -I{} sh -c 'f={}; b=$$(basename $$f .c); \
	    $(MINGW) $(WIN_CFLAGS) -c $$f -o $(WIN)/obj/$$b.o && \
	    $(MINGW) $(WIN_CFLAGS) -DMC_ATOMICS_INTERLOCKED -c $$f -o $(WIN)/obj-il/$$b.o'
	$(MINGW_AR) rcs $(WIN)/libmediacore.a $(WIN)/obj/*.o
	$(MINGW_AR) rcs $(WIN)/libmediacore-il.a $(WIN)/obj-il/*.o
	mkdir -p $(WIN)/support $(WIN)/support-il
	set -e; for f in native/tests/support/*.c; do b=$$(basename $$f .c); \
	    $(MINGW) $(WIN_CFLAGS) -c $$f -o $(WIN)/support/$$b.o; \
	    $(MINGW) $(WIN_CFLAGS) -DMC_ATOMICS_INTERLOCKED -c $$f -o $(WIN)/support-il/$$b.o; done
	$(MINGW_AR) rcs $(WIN)/libmctesting.a $(TEST_SUPPORT_SRC:native/tests/support/%.c=$(WIN)/support/%.o)
	$(MINGW_AR) rcs $(WIN)/libmctesting-il.a $(TEST_SUPPORT_SRC:native/tests/support/%.c=$(WIN)/support-il/%.o)
	@echo "native-win-compile: $$(ls native/src/*.c | wc -l) sources and $$(ls native/tests/support/*.c | wc -l)\
	 test/benchmark helpers compile for Windows (both atomics branches)"

native-win-link: native-win-compile bootstrap
	set -e; for t in $(WIN_TESTS); do \
	    $(MINGW) $(WIN_CFLAGS) native/tests/$$t.c -o $(WIN)/$$t.exe $(WIN)/libmctesting.a \
	        $(WIN)/libmediacore.a $(WIN_LIBS); \
	    $(MINGW) $(WIN_CFLAGS) -DMC_ATOMICS_INTERLOCKED native/tests/$$t.c -o $(WIN)/$$t-il.exe \
	        $(WIN)/libmctesting-il.a $(WIN)/libmediacore-il.a $(WIN_LIBS); \
	done
	$(PYTHON) native/build.py --emit-c $(WIN)/_native.c >/dev/null
	$(MINGW) $(CWARN) -O2 -shared -static-libgcc -DMS_WIN64 -I$(WIN_DEPS)/python/Include -I$(WIN_DEPS)/python/PC \
	    $(NATIVE_INC) $(WIN)/_native.c -o $(WIN)/_native.pyd \
	    -Wl,--whole-archive $(WIN)/libmediacore.a -Wl,--no-whole-archive -lpython3 $(WIN_LIBS)
	[ "$$($(MINGW_OBJDUMP) -p $(WIN)/_native.pyd | sed -n '/^\[Ordinal\/Name Pointer\] Table/,/^$$/p' \
	    | grep -cE '^\s+\[ *[0-9]+\] ')" = 1 ] && $(MINGW_OBJDUMP) -p $(WIN)/_native.pyd \
	    | grep -qE '^\s+\[ *[0-9]+\] PyInit__native$$' \
	    || { echo "_native.pyd must export PyInit__native and nothing else"; exit 1; }
	$(MINGW_OBJDUMP) -p $(WIN)/_native.pyd | grep -q 'DLL Name: python3.dll' \
	    || { echo "_native.pyd does not import python3.dll"; exit 1; }
	set -e; for f in $(WIN)/*.exe $(WIN)/_native.pyd; do \
	    bad=$$($(MINGW_OBJDUMP) -p $$f | sed -n 's/^[[:space:]]*DLL Name: //p' \
	        | grep -viE '^($(WIN_DLLS)|python3)\.dll$$' || true); \
	    [ -z "$$bad" ] || { echo "$$f imports $$bad"; exit 1; }; \
	    case $$f in *.pyd) ;; *) ! $(MINGW_OBJDUMP) -p $$f | grep -q 'DLL Name: python3.dll' \
	        || { echo "$$f imports python3.dll"; exit 1; };; esac; \
	done
	@echo "native-win-link: $(words $(WIN_TESTS)) tests x 2 atomics branches and _native.pyd (abi3,\
	 exports PyInit__native) link; imports only $(WIN_DLLS) (+ python3.dll for the .pyd)"

native-win-run: native-win-link
	rm -f $(WIN)/run.list
	$(foreach t,$(WIN_TESTS),echo "$(WIN)/$(t).exe $(WIN_ARGS_$(t))" >> $(WIN)/run.list; \
	    echo "$(WIN)/$(t)-il.exe $(WIN_ARGS_$(t))" >> $(WIN)/run.list;)
	bash scripts/wine-run.sh --list $(WIN)/run.list

native-win: native-win-run

# The portability layer on its own (net.c sockets and batches, compat.c clock,
# threads, wait/wake): -Werror, ASan/UBSan, TSan here; mingw + wine above.
.PHONY: native-net
NET_SRC := native/src/compat.c native/src/net.c native/src/status.c
native-check: native-net
native-net: | $(BUILD)
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(NET_SRC) native/tests/test_net.c -o $(BUILD)/test_net -lpthread
	$(BUILD)/test_net 200
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(NET_SRC) native/tests/test_net.c -o $(BUILD)/test_net_asan -lpthread
	$(BUILD)/test_net_asan 100
	$(CC) $(CWARN) -O1 -g -fsanitize=thread $(NATIVE_INC) $(NET_SRC) native/tests/test_net.c \
	    -o $(BUILD)/test_net_tsan -lpthread
	TSAN_OPTIONS=halt_on_error=1 setarch -R $(BUILD)/test_net_tsan 100

# ---- H.264 RTP: C tests (-Werror, ASan/UBSan; mingw+wine in native-win-run) and bounded fuzzing
.PHONY: native-h264 fuzz-h264
H264_SRC := native/src/compat.c native/src/ring.c native/src/status.c native/src/h264_rtp.c native/src/h264_depacketizer.c native/src/h264_packetizer.c
FUZZ_CC ?= clang
native-check: native-h264 fuzz-h264

native-h264: | $(BUILD)
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(H264_SRC) native/tests/test_h264_rtp.c -o $(BUILD)/test_h264_rtp -lpthread
	$(BUILD)/test_h264_rtp 2000
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(H264_SRC) native/tests/test_h264_rtp.c -o $(BUILD)/test_h264_rtp_asan -lpthread
	$(BUILD)/test_h264_rtp_asan 600

fuzz-h264: | $(BUILD)
	$(FUZZ_CC) $(CWARN) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(NATIVE_INC) $(H264_SRC) native/fuzz/h264_fuzz.c -o $(BUILD)/h264_fuzz -lpthread
	rm -rf $(BUILD)/h264_corpus && mkdir -p $(BUILD)/h264_corpus && cp native/fuzz/corpus/h264/* $(BUILD)/h264_corpus/
	$(BUILD)/h264_fuzz -max_total_time=20 -timeout=10 -rss_limit_mb=2048 $(BUILD)/h264_corpus

# SRTP (srtp.c): C test with -Werror at -O2, then under ASan+UBSan; libFuzzer
# target (clang) seeded from native/fuzz/corpus/srtp, bounded by FUZZ_TIME s.
# Windows: test_srtp is linked against a mingw libcrypto and run under wine (native-win-run).
SRTP_SRC := native/src/compat.c native/src/srtp.c native/src/status.c
FUZZ_TIME ?= 20
native-srtp: | $(BUILD)
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(SRTP_SRC) native/tests/test_srtp.c -o $(BUILD)/test_srtp -lcrypto -lpthread
	$(BUILD)/test_srtp 70000
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(SRTP_SRC) native/tests/test_srtp.c -o $(BUILD)/test_srtp_asan -lcrypto -lpthread
	$(BUILD)/test_srtp_asan 70000

fuzz-srtp: | $(BUILD)
	clang $(CWARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(NATIVE_INC) $(SRTP_SRC) native/fuzz/srtp_fuzz.c -o $(BUILD)/srtp_fuzz -lcrypto -lpthread
	rm -rf $(BUILD)/corpus-srtp && mkdir -p $(BUILD)/corpus-srtp && cp native/fuzz/corpus/srtp/* $(BUILD)/corpus-srtp/
	$(BUILD)/srtp_fuzz -max_total_time=$(FUZZ_TIME) -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/ $(BUILD)/corpus-srtp

# Audio (mixer, codecs, resampler, DTMF, levels): -Werror, then ASan/UBSan.
# (Windows: test_audio and test_audiograph run under wine, native-win-run.)
native-audio: | $(BUILD)
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(OPUS_CFLAGS) $(AUDIO_SRC) native/tests/test_audio.c \
	    -o $(BUILD)/test_audio $(AUDIO_LIBS)
	$(BUILD)/test_audio
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(OPUS_CFLAGS) $(AUDIO_SRC) native/tests/test_audio.c -o $(BUILD)/test_audio_asan $(AUDIO_LIBS)
	$(BUILD)/test_audio_asan
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(OPUS_CFLAGS) $(AUDIOGRAPH_SRC) native/tests/test_audiograph.c \
	    -o $(BUILD)/test_audiograph $(AUDIO_LIBS)
	$(BUILD)/test_audiograph
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(OPUS_CFLAGS) $(AUDIOGRAPH_SRC) native/tests/test_audiograph.c \
	    -o $(BUILD)/test_audiograph_asan $(AUDIO_LIBS)
	$(BUILD)/test_audiograph_asan
	$(CC) $(CWARN) -O1 -g -fsanitize=thread $(NATIVE_INC) $(OPUS_CFLAGS) $(AUDIOGRAPH_SRC) \
	    native/tests/test_audiograph.c -o $(BUILD)/test_audiograph_tsan $(AUDIO_LIBS)
	TSAN_OPTIONS=halt_on_error=1 setarch -R $(BUILD)/test_audiograph_tsan

# libFuzzer on the Opus/G.711/L16/DTMF depayloading, bounded time, seeded corpus
fuzz-audio: | $(BUILD)
	clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(NATIVE_INC) $(OPUS_CFLAGS) $(AUDIO_SRC) native/fuzz/audio_fuzz.c -o $(BUILD)/audio_fuzz $(AUDIO_LIBS)
	mkdir -p $(BUILD)/audio_corpus
	$(BUILD)/audio_fuzz -max_total_time=20 -max_len=1600 $(BUILD)/audio_corpus native/fuzz/corpus/audio

# ---- RTP/RTCP, receive statistics, jitter and reorder buffers (rtp.c, rtcp.c,
# rtpstats.c, jitter.c, reorder.c): C test with -Werror, ASan/UBSan, and
# mingw-w64 under wine in native-win-run; libFuzzer on both parsers
# (and the buffers fed by the RTP one), seeded from native/fuzz/corpus/{rtp,rtcp}
# (regenerate with scripts/fuzz/make_rtp_corpus.py), RTP_FUZZ_TIME s each.
.PHONY: native-rtp fuzz-rtp
RTP_SRC := native/src/compat.c native/src/status.c native/src/rtp.c native/src/rtcp.c \
        native/src/rtpstats.c native/src/jitter.c native/src/reorder.c
RTP_FUZZ_TIME ?= 15
native-check: native-rtp fuzz-rtp

native-rtp: | $(BUILD)
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(RTP_SRC) native/tests/support/jitter_bench.c native/tests/test_rtp.c \
	    -o $(BUILD)/test_rtp -lpthread
	$(BUILD)/test_rtp 50000
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(RTP_SRC) native/tests/support/jitter_bench.c native/tests/test_rtp.c \
	    -o $(BUILD)/test_rtp_asan -lpthread
	$(BUILD)/test_rtp_asan 20000

fuzz-rtp: | $(BUILD)
	set -e; for t in rtp rtcp; do \
	    clang $(CWARN) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	        $(NATIVE_INC) $(RTP_SRC) native/fuzz/$${t}_fuzz.c -o $(BUILD)/$${t}_fuzz -lpthread; \
	    rm -rf $(BUILD)/corpus-$$t && mkdir -p $(BUILD)/corpus-$$t && cp native/fuzz/corpus/$$t/* $(BUILD)/corpus-$$t/; \
	    $(BUILD)/$${t}_fuzz -max_total_time=$(RTP_FUZZ_TIME) -rss_limit_mb=2048 -artifact_prefix=$(BUILD)/ \
	        $(BUILD)/corpus-$$t; \
	done

# ---- outgoing RTCP (rtcp.c builders and the RFC 3550 6.3 timer): C test with
# -Werror, ASan/UBSan (mingw-w64 under wine: native-win-run)
.PHONY: native-rtcp
native-check: native-rtcp
native-rtcp: | $(BUILD)
	$(CC) $(CWARN) -O2 $(NATIVE_INC) $(RTP_SRC) native/tests/test_rtcp.c -o $(BUILD)/test_rtcp -lpthread -lm
	$(BUILD)/test_rtcp 2000
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(RTP_SRC) native/tests/test_rtcp.c -o $(BUILD)/test_rtcp_asan -lpthread -lm
	$(BUILD)/test_rtcp_asan 500

# ---- benchmarks, demo ----------------------------------------------------
bench: build
	$(PYTHON) -m benchmarks --json build/bench.json

bench-quick: build
	$(PYTHON) -m benchmarks --quick --json build/bench-quick.json

demo: build
	$(PYTHON) -m bot demo

# ---- soak: 20 calls per level set up and torn down for 30 minutes; RSS, fds,
# threads, shared memory and child processes must stay flat (docs/soak.md)
.PHONY: soak
soak: build
	$(PYTHON) -m tests.soak --duration 1800 --calls 20 --level both --warmup 300 --json build/soak.json

clean:
	rm -rf build mediacore/_native*.so mediacore/_native*.pyd

# ---- engine: C test with real sockets and the I/O thread (ASan/UBSan, TSan)
# and a bounded libFuzzer run of the whole receive path (inject entry point)
.PHONY: native-engine fuzz-engine
ENGINE_SRC := native/src/compat.c native/src/ring.c native/src/status.c native/src/net.c \
              native/src/engine.c native/src/engine_rtcp.c native/src/engine_media.c native/src/srtp.c native/src/rtp.c \
              native/src/rtcp.c native/src/rtpstats.c native/src/jitter.c native/src/reorder.c
native-check: native-engine fuzz-engine
native-engine: | $(BUILD)
	$(CC) $(CWARN) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(NATIVE_INC) $(ENGINE_SRC) native/tests/test_engine.c -o $(BUILD)/test_engine_asan -lcrypto -lpthread
	timeout 300 $(BUILD)/test_engine_asan 150
	$(CC) $(CWARN) -O1 -g -fsanitize=thread $(NATIVE_INC) $(ENGINE_SRC) native/tests/test_engine.c \
	    -o $(BUILD)/test_engine_tsan -lcrypto -lpthread
	TSAN_OPTIONS=halt_on_error=1 timeout 300 setarch -R $(BUILD)/test_engine_tsan 60

fuzz-engine: | $(BUILD)
	clang $(CWARN) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	    $(NATIVE_INC) $(ENGINE_SRC) native/fuzz/engine_fuzz.c -o $(BUILD)/engine_fuzz -lcrypto -lpthread
	rm -rf $(BUILD)/engine_corpus && mkdir -p $(BUILD)/engine_corpus
	$(BUILD)/engine_fuzz -max_total_time=20 -rss_limit_mb=2048 $(BUILD)/engine_corpus native/fuzz/corpus/engine

"""cffi builder for ``mediacore._native``.

The declarations come from ``native/include/mediacore.h`` itself: every region
between ``@cdef-begin`` and ``@cdef-end`` is plain C that cffi parses, so the
binding cannot drift from the header. All ``native/src/*.c`` files are
compiled into the extension, and nothing else: the helpers of tests and
benchmarks (ring self-test workers, benchmark loops and baselines, the paced
RTP load generator) live in ``native/tests/support`` and build into a second module, ``_mediacore_testing``
(``testing_ffibuilder``), which is never installed: it includes the shipped
module's declarations, so handles from ``mediacore._native`` pass to it.

Run directly (``python native/build.py``) to build both in place (the testing
module at the repository root, for the test suites and benchmarks), or let
setuptools build the shipped one through ``cffi_modules`` in setup.py.
``python native/build.py --emit-c PATH`` only writes the shipped module's C
source (used for the Windows link check).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INCLUDE = HERE / "include"
SRC = HERE / "src"
SUPPORT = HERE / "tests" / "support"

_CDEF_BLOCK = re.compile(r"/\* @cdef-begin[^*]*\*/(.*?)/\* @cdef-end \*/", re.S)


def cdef_text(header_path: Path = INCLUDE / "mediacore.h") -> str:
    """The cffi declarations: the cdef regions of a header, MC_API removed."""
    header = header_path.read_text()
    blocks = _CDEF_BLOCK.findall(header)
    if not blocks:
        raise RuntimeError("mediacore.h has no @cdef-begin/@cdef-end regions")
    text = "\n".join(blocks)
    text = re.sub(r"\bMC_API\s+", "", text)
    return text


def _pkg_config(*args: str) -> list[str]:
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    return out.stdout.split()


def build_settings() -> dict:
    """Compiler and linker settings for this platform.

    Linux/macOS: system OpenSSL libcrypto and libopus (pkg-config when present).
    Windows: MSVC with vcpkg; set VCPKG_INSTALLED (e.g. C:\\vcpkg\\installed\\x64-windows).
    """
    # setuptools wants paths relative to the project root (where setup.py is)
    sources = sorted(p.relative_to(ROOT).as_posix() for p in SRC.glob("*.c"))
    include_dirs = [INCLUDE.relative_to(ROOT).as_posix(), SRC.relative_to(ROOT).as_posix()]
    library_dirs: list[str] = []
    define_macros: list[tuple[str, str | None]] = []
    if sys.platform == "win32":
        vcpkg = os.environ.get("VCPKG_INSTALLED")
        if vcpkg:
            include_dirs.append(os.path.join(vcpkg, "include"))
            library_dirs.append(os.path.join(vcpkg, "lib"))
        libraries = ["libcrypto", "opus", "ws2_32", "synchronization"]
        extra_compile_args = ["/O2", "/W4"]
        define_macros.append(("WIN32_LEAN_AND_MEAN", None))
    else:
        libraries = ["crypto", "opus", "pthread"]
        extra_compile_args = [
            "-std=c11",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fvisibility=hidden",
        ]
        for flag in _pkg_config("--cflags", "libcrypto", "opus"):
            if flag.startswith("-I"):
                include_dirs.append(flag[2:])
        extra = os.environ.get("MC_EXTRA_CFLAGS")
        if extra:
            extra_compile_args += extra.split()
    return {
        "sources": sources,
        "include_dirs": include_dirs,
        "library_dirs": library_dirs,
        "libraries": libraries,
        "define_macros": define_macros,
        "extra_compile_args": extra_compile_args,
    }


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "mediacore._native",
    '#include "mediacore.h"\n',
    **build_settings(),
)


def testing_settings() -> dict:
    """The testing module: its own copy of the core (hidden symbols, so the two
    never clash) plus native/tests/support, all with absolute paths (cffi
    compiles it in a temporary directory). srtp_floor.c compiles srtp.c into
    itself, so the core's srtp.c is left out."""
    settings = build_settings()
    core = [str(ROOT / s) for s in settings["sources"] if not s.endswith("/srtp.c")]
    support = sorted(str(p) for p in SUPPORT.glob("*.c"))
    settings["sources"] = core + support
    settings["include_dirs"] = [str(ROOT / d) if not os.path.isabs(d) else d
                                for d in settings["include_dirs"]] + [str(SUPPORT)]
    return settings


testing_ffibuilder = FFI()
testing_ffibuilder.include(ffibuilder)
testing_ffibuilder.cdef(cdef_text(SUPPORT / "testing.h"))
testing_ffibuilder.set_source("_mediacore_testing", '#include "testing.h"\n', **testing_settings())


def build_testing_module() -> int:
    """Build _mediacore_testing at the repository root (never installed)."""
    tmp = ROOT / "build" / "testing"
    tmp.mkdir(parents=True, exist_ok=True)
    built = Path(testing_ffibuilder.compile(tmpdir=str(tmp), verbose=False))
    for old in ROOT.glob("_mediacore_testing*.so"):
        old.unlink()
    built.replace(ROOT / built.name)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--emit-c":
        # Only write the C source of the module (for cross builds: the Windows
        # .pyd link check in `make native-win-link` compiles it with mingw-w64).
        ffibuilder.emit_c_code(sys.argv[2])
        raise SystemExit(0)
    # Build in place (what `make build` does): mediacore/_native.abi3.so, then
    # the testing module beside the repository's tests and benchmarks
    status = subprocess.call([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT)
    if status == 0:
        status = build_testing_module()
    raise SystemExit(status)

"""cffi builder for ``mediacore._native``.

The declarations come from ``native/include/mediacore.h`` itself: every region
between ``@cdef-begin`` and ``@cdef-end`` is plain C that cffi parses, so the
binding cannot drift from the header. All ``native/src/*.c`` files are
compiled into the extension.

Run directly (``python native/build.py``) to build in place, or let setuptools
do it through ``cffi_modules`` in setup.py. ``python native/build.py --emit-c
PATH`` only writes the module's C source (used for the Windows link check).
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

_CDEF_BLOCK = re.compile(r"/\* @cdef-begin[^*]*\*/(.*?)/\* @cdef-end \*/", re.S)


def cdef_text() -> str:
    """The cffi declarations: the cdef regions of mediacore.h, MC_API removed."""
    header = (INCLUDE / "mediacore.h").read_text()
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


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--emit-c":
        # Only write the C source of the module (for cross builds: the Windows
        # .pyd link check in `make native-win-link` compiles it with mingw-w64).
        ffibuilder.emit_c_code(sys.argv[2])
        raise SystemExit(0)
    # Build in place (what `make build` does): mediacore/_native.abi3.so
    raise SystemExit(
        subprocess.call([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT)
    )

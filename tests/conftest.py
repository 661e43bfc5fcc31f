"""Session-wide test set-up.

CPython 3.11 before 3.11.8 keeps the AST recursion depth in global state
(gh-106905): two threads compiling Python source at the same moment can make
one of them fail with "SystemError: AST constructor recursion depth
mismatch". Tests start threads that import modules lazily (msal's token fetch
runs in an executor thread, hypothesis imports its pretty-printer when the
session ends, ...), and a fresh checkout has no bytecode caches, so we import
(and thereby compile) those modules here, on the main thread, before any test
starts a thread.
"""

from __future__ import annotations

import importlib

_EAGER = (
    "msal", "jwt", "cryptography.x509", "requests", "aiohttp", "av", "numpy",
    "hypothesis.internal.reflection", "hypothesis.vendor.pretty",
    "pocketsphinx", "pylibsrtp",
    "mediacore", "mediacore.engine", "mediacore.mediaconfig", "mediacore.rings",
)


def pytest_configure(config) -> None:
    for name in _EAGER:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed
            pass

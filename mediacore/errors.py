"""The one translator from native ``mc_status`` codes to Python exceptions.

Every exception class also inherits the builtin that fits, so callers can catch
``TimeoutError`` or ``ValueError`` without knowing mediacore. Messages come from
the C library (``mc_status_message``); nothing branches on message text.
Per-packet failures never reach here: the native core counts them instead.
"""

from __future__ import annotations

from ._native import ffi, lib


class MediacoreError(Exception):
    """Base class. ``status`` is the native code, ``status_name`` its C name."""

    status: int = 0
    status_name: str = ""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.status_name = _name(status) if status else ""


class InvalidArgument(MediacoreError, ValueError):
    pass


class OutOfMemory(MediacoreError, MemoryError):
    pass


class RingFull(MediacoreError, BufferError):
    pass


class RingEmpty(MediacoreError):
    pass


class Timeout(MediacoreError, TimeoutError):
    pass


class RecordTooLarge(MediacoreError, ValueError):
    pass


class RingClosed(MediacoreError, EOFError):
    pass


class BadSegment(MediacoreError, ValueError):
    """Attached memory is not a usable ring: wrong magic, version or size."""


class NativeOSError(MediacoreError, OSError):
    pass


class CryptoError(MediacoreError):
    pass


class AuthenticationFailed(MediacoreError):
    pass


class ReplayDetected(MediacoreError):
    pass


class Malformed(MediacoreError, ValueError):
    pass


class InvalidState(MediacoreError, RuntimeError):
    pass


class Unsupported(MediacoreError, NotImplementedError):
    pass


class NotFound(MediacoreError, LookupError):
    pass


class AlreadyExists(MediacoreError, ValueError):
    pass


class CodecError(MediacoreError):
    pass


class BufferTooSmall(MediacoreError, BufferError):
    pass


_CLASSES: dict[int, type[MediacoreError]] = {
    lib.MC_E_INVAL: InvalidArgument,
    lib.MC_E_NOMEM: OutOfMemory,
    lib.MC_E_FULL: RingFull,
    lib.MC_E_EMPTY: RingEmpty,
    lib.MC_E_TIMEOUT: Timeout,
    lib.MC_E_TOO_LARGE: RecordTooLarge,
    lib.MC_E_CLOSED: RingClosed,
    lib.MC_E_BAD_MAGIC: BadSegment,
    lib.MC_E_BAD_VERSION: BadSegment,
    lib.MC_E_BAD_SIZE: BadSegment,
    lib.MC_E_IO: NativeOSError,
    lib.MC_E_CRYPTO: CryptoError,
    lib.MC_E_AUTH: AuthenticationFailed,
    lib.MC_E_REPLAY: ReplayDetected,
    lib.MC_E_MALFORMED: Malformed,
    lib.MC_E_STATE: InvalidState,
    lib.MC_E_UNSUPPORTED: Unsupported,
    lib.MC_E_NOT_FOUND: NotFound,
    lib.MC_E_EXISTS: AlreadyExists,
    lib.MC_E_CODEC: CodecError,
    lib.MC_E_BUFFER: BufferTooSmall,
}


def _name(status: int) -> str:
    return ffi.string(lib.mc_status_name(status)).decode()


def error_for(status: int, context: str = "") -> MediacoreError:
    """The exception for a negative status (not raised)."""
    message = ffi.string(lib.mc_status_message(status)).decode()
    cls = _CLASSES.get(status, MediacoreError)
    text = f"{context}: {message}" if context else message
    if status == lib.MC_E_IO:
        errno = lib.mc_last_os_error()
        if errno:
            text += f" (OS error {errno})"
    return cls(f"{text} [{_name(status)}]", status)


def check(status: int, context: str = "") -> int:
    """Return ``status`` if it is a success code, else raise its exception."""
    if status < 0:
        raise error_for(status, context)
    return status

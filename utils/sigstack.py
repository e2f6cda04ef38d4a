"""Keep each thread's alternate signal stack valid around OpenVINO calls that create or quantize CPU models.

OpenVINO's CPU plugin, whenever an ov.Core creates its CPU plugin (the first compile_model on that Core, and inside
NNCF's quantize), maps a small stack and installs it as the calling thread's alternate signal stack, remembering the
one it replaced. When that plugin is destroyed it puts the remembered stack back, but only if its own is still current,
and unmaps its own either way. Two plugins destroyed out of creation order (A, B created; A freed, then B) therefore
leave the thread's alternate stack pointing at A's unmapped pages; a plugin freed on another thread leaves it pointing
at unmapped pages at once. Python installs its signal handlers with SA_ONSTACK, so the next Python-handled signal on
that thread (SIGCHLD from a DataLoader worker or a subprocess, whose handler torch leaves installed) cannot be delivered
and the kernel kills the process with SIGSEGV, before faulthandler or anything else can report. It happens on any x86
CPU; the earlier guess that AMX was needed was wrong.

keep_signal_stack() wraps such calls: afterwards the thread runs on a stack this module owns for the rest of the
process, so no plugin's destructor ever finds its own stack current, and none ever restores a stale one.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

_AT_MINSIGSTKSZ = 51  # getauxval key: the kernel's minimum signal frame for this CPU's register state
_SIGSTKSZ = 8192  # glibc's classic SIGSTKSZ, added on top of the frame as OpenVINO and glibc do
_MIN_SIZE = 64 * 1024  # generous: Python's C handler and faulthandler's dump both run on this stack
_stacks: dict[int, ctypes.Array] = {}  # thread ident -> the stack we installed there; kept for the process's life
_lock = threading.Lock()


class StackT(ctypes.Structure):
    """Linux stack_t, as sigaltstack(2) reads and writes it."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@cache
def _libc() -> ctypes.CDLL:
    """The C library, loaded once (every wrapped compile asks for it)."""
    return ctypes.CDLL(None, use_errno=True)


def sigaltstack(new: StackT | None = None) -> StackT:
    """Set the calling thread's alternate signal stack (when new is given); returns the one in place before."""
    old = StackT()
    if _libc().sigaltstack(ctypes.byref(new) if new is not None else None, ctypes.byref(old)) != 0:
        raise OSError(ctypes.get_errno(), "sigaltstack failed")
    return old


def stack_size() -> int:
    """Bytes for an alternate stack that holds this CPU's signal frame (AVX-512 or AMX state included) with room."""
    libc = _libc()
    libc.getauxval.restype = ctypes.c_ulong
    frame = int(libc.getauxval(ctypes.c_ulong(_AT_MINSIGSTKSZ)) or 0)
    return max(_MIN_SIZE, 4 * (frame + _SIGSTKSZ))


def own_stack() -> StackT | None:
    """This module's stack for the calling thread, None if it has not installed one there."""
    buf = _stacks.get(threading.get_ident())
    return None if buf is None else StackT(ctypes.addressof(buf), 0, ctypes.sizeof(buf))


def install_own_stack() -> None:
    """Make the calling thread's alternate signal stack one this module owns, unless it already is."""
    if sys.platform != "linux":
        return
    with _lock:
        buf = _stacks.get(threading.get_ident())
        if buf is None:
            buf = _stacks[threading.get_ident()] = ctypes.create_string_buffer(stack_size())
    current = sigaltstack()
    if current.ss_sp != ctypes.addressof(buf) and not current.ss_flags & 1:  # 1 = SS_ONSTACK: running on it now
        sigaltstack(StackT(ctypes.addressof(buf), 0, ctypes.sizeof(buf)))


@contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Run an OpenVINO compile or NNCF quantize, then leave the thread on a stack no plugin can unmap (Linux)."""
    try:
        yield
    finally:
        install_own_stack()

"""Downloads that fail fast, with an error that names the fix, when there is no network."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from urllib.error import URLError

from ..errors import DataError

DOWNLOAD_TIMEOUT_S = 30  # per socket operation; without it urllib can hang for minutes offline


@contextlib.contextmanager
def download_guard(name: str, root: str, manual_hint: str) -> Iterator[None]:
    """Turn a failed or stalled download inside the block into a one-line DataError."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    except (URLError, OSError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"download of {name} into {root} failed ({first_line}); check the network, or "
            f"{manual_hint} and set dataset.download=false"
        ) from error
    finally:
        socket.setdefaulttimeout(previous)

"""Fetching a public document another party serves (a DID document, a status
list): no redirects, a timeout, and a size bound enforced while reading, so a
hostile server cannot make the verifier read without end."""

from __future__ import annotations

import requests

# Hosts served over plain http in tests and on one machine; everything else is https.
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def bounded_get(url: str, *, accept: str, limit: int, what: str, timeout: float) -> bytes:
    """The body at `url`, or OSError saying why not (not 200, or more than `limit` bytes)."""
    with requests.get(url, timeout=timeout, stream=True, allow_redirects=False,
                      headers={"Accept": accept}) as response:
        if response.status_code != 200:
            raise OSError(f"HTTP {response.status_code}")
        chunks, size = [], 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > limit:
                raise OSError(f"the {what} is larger than {limit:,} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

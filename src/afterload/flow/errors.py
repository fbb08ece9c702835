"""The one error the protocol layer raises: the runtime (or a test) broke the protocol."""

from __future__ import annotations

from afterload.errors import AfterloadError


class ProtocolError(AfterloadError):
    """A message that is malformed or out of order; the sentence names the message and state.

    The connector exits non-zero with this sentence: the runtime restarts the shard, and
    nothing committed is lost because every commit is atomic in the destination.
    """

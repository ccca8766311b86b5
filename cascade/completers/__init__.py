"""Completers: the one I/O boundary between the cascade and model providers."""

from cascade.completers.fake import FakeCompleter, FakeReply
from cascade.completers.retrying import RetryingCompleter

__all__ = ["FakeCompleter", "FakeReply", "RetryingCompleter"]

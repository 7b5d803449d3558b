"""The queue between a transport and its ``stream()``: batches of items in, single items out.

Transports receive data in chunks (a serial read, a BLE notification); putting the whole chunk's items as one batch
keeps the cost per sample low (one queue operation and at most one event-loop wake-up per chunk, not per sample).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sensor_drivers.sample import StreamItem


class ItemQueue:
    """An unbounded queue of stream-item batches that ends with :meth:`finish`.

    Unbounded on purpose: a slow consumer must not make the transport drop samples (a five-sensor kit at 200 Hz is
    about 1000 small objects a second, so even a stalled consumer grows memory slowly and visibly).
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[list[StreamItem] | None] = asyncio.Queue()
        self._finished = False
        self.n_items = 0

    def put(self, batch: list[StreamItem]) -> None:
        """Append a batch (from the event loop's thread). Ignored after :meth:`finish`."""
        if batch and not self._finished:
            self.n_items += len(batch)
            self._queue.put_nowait(batch)

    def put_threadsafe(self, loop: asyncio.AbstractEventLoop, batch: list[StreamItem]) -> bool:
        """Append a batch from another thread; returns False when the loop is closed (the batch is dropped)."""
        try:
            loop.call_soon_threadsafe(self.put, batch)
        except RuntimeError:  # loop closed: nobody is left to read the stream
            return False
        return True

    def finish(self) -> None:
        """End the stream after the batches already queued."""
        if not self._finished:
            self._finished = True
            self._queue.put_nowait(None)

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self._finished

    async def items(self) -> AsyncIterator[StreamItem]:
        """Every queued item in order until the end marker."""
        queue = self._queue
        while True:
            batch = await queue.get()
            if batch is None:
                queue.put_nowait(None)  # a second reader also ends instead of hanging
                return
            for item in batch:
                yield item

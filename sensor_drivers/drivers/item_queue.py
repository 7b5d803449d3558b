"""The queue between a transport and its streams: batches of items in; single items, or blocks, out.

Transports receive data in chunks (a serial read, a BLE notification); putting the whole chunk's items as one batch
keeps the cost per sample low (one queue operation and at most one event-loop wake-up per chunk, not per sample).
A batch may hold single samples or blocks of samples (:class:`~sensor_drivers.blocks.SampleBlock`, what a block
decoder makes of one read); each reader gets the form it asks for: :meth:`ItemQueue.items` single samples (blocks
expanded), :meth:`ItemQueue.blocks` blocks (runs of single samples joined).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sensor_drivers.blocks import BlockStreamItem, SampleBlock, expand_blocks, group_samples
from sensor_drivers.sample import StreamItem

#: What a batch holds: single samples, blocks of samples and link events.
QueueItem = StreamItem | SampleBlock


class ItemQueue:
    """An unbounded queue of stream-item batches that ends with :meth:`finish`.

    Unbounded on purpose: a slow consumer must not make the transport drop samples (a five-sensor kit at 200 Hz is
    about 1000 small objects a second, so even a stalled consumer grows memory slowly and visibly).
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[list[QueueItem] | None] = asyncio.Queue()
        self._finished = False
        self._target: ItemQueue | None = None
        #: Items put so far (a block counts as one).
        self.n_items = 0

    def put(self, batch: list[QueueItem]) -> None:
        """Append a batch (from the event loop's thread). Ignored after :meth:`finish`."""
        if batch and not self._finished:
            self.n_items += len(batch)
            if self._target is not None:
                self._target.put(batch)
            else:
                self._queue.put_nowait(batch)

    def forward_to(self, target: ItemQueue) -> None:
        """Hand every batch straight to ``target`` from now on (those already queued first).

        A merging consumer (the kit) saves a task switch per batch this way. The end marker is not forwarded: the
        consumer ends ``target`` itself. Reading this queue after forwarding is an error.
        """
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            if batch is not None:
                target.put(batch)
        self._target = target

    def put_threadsafe(self, loop: asyncio.AbstractEventLoop, batch: list[QueueItem]) -> bool:
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
            if self._target is None:
                self._queue.put_nowait(None)

    @property
    def finished(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self._finished

    async def items(self) -> AsyncIterator[StreamItem]:
        """Every queued item in order until the end marker, blocks expanded into their samples."""
        # Not built on batches(): one async-generator level per item less (a kit yields ~1000 items a second).
        if self._target is not None:
            raise RuntimeError("this stream is forwarded to a kit; read the kit's stream instead")
        queue = self._queue
        try:
            while True:
                batch = await queue.get()
                if batch is None:
                    return
                for item in batch:
                    if type(item) is SampleBlock:
                        for sample in item.samples():
                            yield sample
                    else:
                        yield item  # type: ignore[misc]
        finally:
            if self._finished:
                queue.put_nowait(None)  # a later reader also ends instead of hanging

    async def batches(self) -> AsyncIterator[list[StreamItem]]:
        """The queued batches in order until the end marker, blocks expanded into their samples."""
        if self._target is not None:
            raise RuntimeError("this stream is forwarded to a kit; read the kit's stream instead")
        queue = self._queue
        try:
            while True:
                batch = await queue.get()
                if batch is None:
                    return
                yield expand_blocks(batch)
        finally:
            if self._finished:
                queue.put_nowait(None)  # a later reader also ends instead of hanging

    async def blocks(self) -> AsyncIterator[BlockStreamItem]:
        """Every queued item in order until the end marker, runs of single samples joined into blocks
        (:func:`~sensor_drivers.blocks.group_samples`): the form for consumers that work on arrays."""
        if self._target is not None:
            raise RuntimeError("this stream is forwarded to a kit; read the kit's stream instead")
        queue = self._queue
        try:
            while True:
                batch = await queue.get()
                if batch is None:
                    return
                for item in group_samples(batch):
                    yield item
        finally:
            if self._finished:
                queue.put_nowait(None)  # a later reader also ends instead of hanging

"""Helpers for reading driver streams in tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from sensor_drivers.sample import ImuSample, LinkEvent, LinkState, StreamItem


async def collect(
    items: AsyncIterator[StreamItem],
    until: Callable[[list[StreamItem]], bool],
    *,
    timeout_s: float = 10.0,
    into: list[StreamItem] | None = None,
) -> list[StreamItem]:
    """Read ``items`` into ``into`` (a new list by default) until ``until(list)`` holds; fail after ``timeout_s``."""
    out = into if into is not None else []

    async def run() -> None:
        while not until(out):
            out.append(await anext(items))

    try:
        await asyncio.wait_for(run(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"condition not met within {timeout_s} s; got {summary(out)}") from None
    return out


async def drain(items: AsyncIterator[StreamItem], *, timeout_s: float = 10.0) -> list[StreamItem]:
    """Everything until the stream ends."""
    out: list[StreamItem] = []

    async def run() -> None:
        async for item in items:
            out.append(item)

    try:
        await asyncio.wait_for(run(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"stream did not end within {timeout_s} s; got {summary(out)}") from None
    return out


def samples(items: list[StreamItem], sensor_id: str | None = None) -> list[ImuSample]:
    """The samples (of one sensor)."""
    return [i for i in items if isinstance(i, ImuSample) and (sensor_id is None or i.sensor_id == sensor_id)]


def events(items: list[StreamItem], state: LinkState | None = None) -> list[LinkEvent]:
    """The link events (of one kind)."""
    return [i for i in items if isinstance(i, LinkEvent) and (state is None or i.state is state)]


def n_samples(n: int) -> Callable[[list[StreamItem]], bool]:
    """Condition: at least ``n`` samples."""
    return lambda out: sum(isinstance(i, ImuSample) for i in out) >= n


def has_event(state: LinkState, count: int = 1) -> Callable[[list[StreamItem]], bool]:
    """Condition: at least ``count`` events of a kind."""
    return lambda out: sum(isinstance(i, LinkEvent) and i.state is state for i in out) >= count


def summary(items: list[StreamItem]) -> str:
    """Samples counted, events listed: readable assertion messages."""
    parts: list[str] = []
    run = 0
    for item in items:
        if isinstance(item, ImuSample):
            run += 1
            continue
        if run:
            parts.append(f"{run} samples")
            run = 0
        parts.append(f"{item.state}({item.reason}, n_missing={item.n_missing})")
    if run:
        parts.append(f"{run} samples")
    return ", ".join(parts) or "nothing"

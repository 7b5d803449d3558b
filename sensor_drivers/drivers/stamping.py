"""Turning decoded readings into stream items: sensor identity, host receive time, and sequence gaps.

Shared by every transport so that all of them mark lost samples the same way, whether they stamp single readings
(:meth:`Stamper.stamp`) or decoded blocks (:meth:`Stamper.stamp_blocks`). A sequence jump while the link stays up
becomes a ``LinkEvent(GAP, n_missing=…)`` placed in the stream just before the first sample after the gap. Across a
disconnect the ``DISCONNECTED``/``CONNECTED`` pair already marks the gap, so the transport calls :meth:`Stamper.restart`
and no second ``GAP`` is reported for the same hole.
"""

from __future__ import annotations

from collections.abc import Iterable

from sensor_drivers.blocks import ReadingBlock, SampleBlock
from sensor_drivers.sample import DeviceReading, ImuSample, LinkEvent, LinkState, StreamItem
from sensor_drivers.sites import Site


class Stamper:
    """Stamps the readings of one sensor and reports sequence gaps.

    Parameters
    ----------
    sensor_id, site
        Identity written into every sample and event.
    seq_modulus
        Where the device's packet counter wraps (``2**16`` for a 16-bit counter), or ``None`` when it does not wrap
        within a recording. A forward jump of more than half the modulus is read as the counter going back.

    Readings without a device sequence number get a driver-side counter (``0, 1, 2, …``) instead, as
    :class:`~sensor_drivers.sample.ImuSample` documents; no gap can be detected for them.
    """

    def __init__(self, sensor_id: str, site: Site, seq_modulus: int | None = None) -> None:
        if seq_modulus is not None and seq_modulus < 2:
            raise ValueError(f"seq_modulus must be at least 2 (or None), got {seq_modulus}")
        self.sensor_id = sensor_id
        self.site = site
        self.seq_modulus = seq_modulus
        self.n_samples = 0
        self.n_gaps = 0
        #: Samples reported missing by sequence jumps (sum of ``n_missing``).
        self.n_missing = 0
        #: Samples whose sequence number repeated the previous one (passed on, not a gap).
        self.n_seq_repeats = 0
        self._last_seq: int | None = None
        self._counter = 0

    def restart(self) -> None:
        """Forget the last sequence number (after a reconnect: the hole is already marked by link events)."""
        self._last_seq = None

    def stamp(self, readings: Iterable[DeviceReading], host_time_s: float) -> list[StreamItem]:
        """Samples (and gap events before them) for readings that arrived together at ``host_time_s``."""
        # Hot path (about a thousand readings a second for a kit): locals, and ImuSample built positionally
        # (field order of sensor_drivers.sample.ImuSample), which costs about half of ImuSample.from_reading.
        items: list[StreamItem] = []
        append = items.append
        sample = ImuSample
        sensor_id = self.sensor_id
        site = self.site
        last = self._last_seq
        n_samples = 0
        for r in readings:
            seq = r.seq
            if seq is None:
                seq = self._counter
                self._counter += 1
            else:
                if last is not None and seq != last + 1:
                    gap = self._gap_event(last, seq, host_time_s)
                    if gap is not None:
                        append(gap)
                last = seq
            append(
                sample(
                    sensor_id,
                    site,
                    r.device_time_s,
                    host_time_s,
                    seq,
                    r.acc_m_s2,
                    r.gyr_rad_s,
                    r.mag_ut,
                    r.quat_wxyz,
                    r.status,
                )
            )
            n_samples += 1
        self._last_seq = last
        self.n_samples += n_samples
        return items

    def stamp_blocks(self, blocks: Iterable[ReadingBlock], host_time_s: float) -> list[SampleBlock | LinkEvent]:
        """:meth:`stamp` for decoded blocks: sample blocks, split where the sequence jumps, with the gap events
        between them (the same events, in the same places, as :meth:`stamp` puts among single samples)."""
        items: list[SampleBlock | LinkEvent] = []
        sensor_id = self.sensor_id
        site = self.site
        for block in blocks:
            n = len(block)
            if not n:
                continue
            self.n_samples += n
            seq = block.seq
            if seq is None:
                counter = self._counter
                self._counter += n
                items.append(SampleBlock.stamp(block, sensor_id, site, host_time_s, tuple(range(counter, counter + n))))
                continue
            last = self._last_seq
            self._last_seq = seq[-1]
            first = seq[0]
            if (
                (last is None or first == last + 1)
                and seq[-1] - first == n - 1
                and seq == tuple(range(first, first + n))
            ):
                items.append(
                    SampleBlock(
                        sensor_id,
                        site,
                        host_time_s,
                        block.device_time_s,
                        seq,
                        block.rows,
                        block.has_mag,
                        block.has_quat,
                        block.status,
                    )
                )
                continue
            # A jump somewhere: split the block before each sample that follows a gap.
            whole = SampleBlock.stamp(block, sensor_id, site, host_time_s)
            begin = 0
            for k, s in enumerate(seq):
                if last is not None and s != last + 1:
                    gap = self._gap_event(last, s, host_time_s)
                    if gap is not None:
                        if k > begin:
                            items.append(whole.split(begin, k))
                        items.append(gap)
                        begin = k
                last = s
            items.append(whole.split(begin, n) if begin else whole)
        return items

    def _gap_event(self, last: int, seq: int, host_time_s: float) -> LinkEvent | None:
        modulus = self.seq_modulus
        step = (seq - last) % modulus if modulus is not None else seq - last
        if step == 1:  # a wrap of the counter
            return None
        if step == 0:
            self.n_seq_repeats += 1
            return None
        self.n_gaps += 1
        if step < 0 or (modulus is not None and step > modulus // 2):
            # The counter went back: the device restarted (or reordered); how much was lost is unknown.
            return LinkEvent(
                sensor_id=self.sensor_id,
                site=self.site,
                state=LinkState.GAP,
                host_time_s=host_time_s,
                reason=f"sequence went back from {last} to {seq} (device restarted?)",
                n_missing=None,
            )
        n_missing = step - 1
        self.n_missing += n_missing
        return LinkEvent(
            sensor_id=self.sensor_id,
            site=self.site,
            state=LinkState.GAP,
            host_time_s=host_time_s,
            reason=f"sequence jump from {last} to {seq}",
            n_missing=n_missing,
        )

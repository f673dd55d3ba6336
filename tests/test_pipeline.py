"""The loop, reconnection and signals in-process, with small fakes: quick to run, exact about
what is acknowledged. The end-to-end tests prove the same against the real broker."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from easee_tail import catalogue
from easee_tail.decode import decode
from easee_tail.errors import (
    ApiUnavailable,
    BrokerClosed,
    BrokerLoginRefused,
    Interrupted,
    QueueNotFound,
    TlsFailure,
    TlsHandshakeFailed,
    Unreachable,
)
from easee_tail.model import Delivery, ErrorRecord, Observation, Record
from easee_tail.pipeline import Ending, Limits, StopRequest, run
from easee_tail.sinks import PartialFlush, PipeClosed
from easee_tail.sinks.jsonl import JsonlSink
from easee_tail.source import Source
from easee_tail.source.reconnect import Backoff, ReconnectingSource

TABLE = catalogue.load()


def delivery(tag: int, charger: str = "EH000001", obs: int = 120, value: str = "1.5") -> Delivery:
    body = f'{{"Timestamp": "2026-11-26T10:00:00Z", "Value": {value}}}'.encode()
    return Delivery(f"{charger}.O.{obs}", body, None, 1_790_000_000.0, False, tag)


class FakeSource:
    """Batches as given; remembers every acknowledgement. An exception in the list is raised
    when its turn comes."""

    server = "fake"
    queue = "Q"
    status = None
    reconnects = 0

    def __init__(self, batches: Sequence[Sequence[Delivery] | Exception]) -> None:
        self._batches = batches
        self.acks: list[int] = []
        self.closed = False

    def batches(self) -> Iterator[Sequence[Delivery]]:
        for batch in self._batches:
            if isinstance(batch, Exception):
                raise batch
            yield batch

    def ack_through(self, tag: int) -> None:
        self.acks.append(tag)

    def close(self) -> None:
        self.closed = True


class ListSink:
    def __init__(self, partial_at: int | None = None, pipe_closed_at_tick: bool = False,
                 fail_on: str | None = None) -> None:
        self.records: list[Record] = []
        self.flushed = 0
        self._partial_at = partial_at
        self._pipe_closed_at_tick = pipe_closed_at_tick
        self._fail_on = fail_on

    def write(self, record: Record) -> None:
        if self._fail_on is not None and record.charger == self._fail_on \
                and not isinstance(record, ErrorRecord):
            raise ZeroDivisionError("a bug in a sink")
        self.records.append(record)

    def flush(self) -> None:
        if self._partial_at is not None:
            raise PartialFlush(self._partial_at)
        self.flushed = len(self.records)

    def tick(self, now: float) -> None:
        if self._pipe_closed_at_tick:
            raise PipeClosed()

    def close(self) -> None:
        pass


def decoder(item: Delivery) -> Record:
    return decode(item, TABLE)


@pytest.fixture
def stop() -> Iterator[StopRequest]:
    saved = {signum: signal.getsignal(signum) for signum in StopRequest.SIGNALS}
    request = StopRequest()
    request.install()
    yield request
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_each_batch_is_acked_through_its_last_delivery_after_the_flush(stop: StopRequest) -> None:
    source = FakeSource([[delivery(1), delivery(2)], [], [delivery(3)]])
    sink = ListSink()
    ending = run(source, decoder, None, [sink], Limits(), stop)
    assert ending is Ending.SOURCE_ENDED
    assert source.acks == [2, 3]
    assert len(sink.records) == 3 and sink.flushed == 3


def test_filtered_out_messages_are_acked_but_not_written(stop: StopRequest) -> None:
    source = FakeSource([[delivery(1, "EHAAAAAA"), delivery(2, "EHBBBBBB"), delivery(3)]])
    sink = ListSink()
    run(source, decoder, lambda record: record.charger == "EHBBBBBB", [sink], Limits(), stop)
    assert [record.charger for record in sink.records] == ["EHBBBBBB"]
    assert source.acks == [3]


def test_count_acks_through_the_last_record_it_shows_and_no_further(stop: StopRequest) -> None:
    source = FakeSource([[delivery(tag) for tag in range(1, 6)]])
    sink = ListSink()
    assert run(source, decoder, None, [sink], Limits(count=2), stop) is Ending.COUNT_REACHED
    assert source.acks == [2] and len(sink.records) == 2


def test_the_backlog_ends_the_run_after_exactly_its_messages(stop: StopRequest) -> None:
    source = FakeSource([[delivery(1), delivery(2, "EHOTHERX")], [delivery(3), delivery(4)]])
    sink = ListSink()
    keep = lambda record: record.charger != "EHOTHERX"  # noqa: E731
    assert run(source, decoder, keep, [sink], Limits(backlog=3), stop) is Ending.BACKLOG_DONE
    assert source.acks == [2, 3] and len(sink.records) == 2
    assert run(FakeSource([[delivery(1)]]), decoder, None, [ListSink()], Limits(backlog=0),
               stop) is Ending.BACKLOG_DONE


def test_idle_ends_the_run_when_nothing_comes(stop: StopRequest) -> None:
    def batches() -> Iterator[Sequence[Delivery]]:
        yield [delivery(1)]
        while True:
            yield ()

    source = FakeSource([])
    source.batches = batches  # type: ignore[method-assign]
    assert run(source, decoder, None, [ListSink()], Limits(idle=0.05), stop) is Ending.IDLE
    assert source.acks == [1]


def test_a_closed_pipe_at_the_flush_acks_nothing(stop: StopRequest) -> None:
    class Closing(ListSink):
        def flush(self) -> None:
            raise PipeClosed()

    source = FakeSource([[delivery(1)], [delivery(2)]])
    assert run(source, decoder, None, [Closing()], Limits(), stop) is Ending.PIPE_CLOSED
    assert source.acks == []


def test_a_reader_that_left_is_noticed_at_an_idle_tick(stop: StopRequest) -> None:
    source = FakeSource([[], [delivery(1)]])
    sink = ListSink(pipe_closed_at_tick=True)
    assert run(source, decoder, None, [sink], Limits(), stop) is Ending.PIPE_CLOSED
    assert source.acks == [] and sink.records == []


def test_a_partial_flush_acks_only_what_went_out(stop: StopRequest) -> None:
    # tags 1..6; 2 and 4 filtered out; 3 records of 4 kept went out (1, 3, 5): ack through 5
    batch = [delivery(1), delivery(2, "EHXXXXXX"), delivery(3), delivery(4, "EHXXXXXX"),
             delivery(5), delivery(6)]
    source = FakeSource([batch])
    keep = lambda record: record.charger != "EHXXXXXX"  # noqa: E731
    ending = run(source, decoder, keep, [ListSink(partial_at=3)], Limits(), stop)
    assert ending is Ending.SIGNAL
    assert source.acks == [5]


def test_a_partial_flush_with_nothing_out_acks_nothing(stop: StopRequest) -> None:
    source = FakeSource([[delivery(1), delivery(2)]])
    run(source, decoder, None, [ListSink(partial_at=0)], Limits(), stop)
    assert source.acks == []


def test_a_decoder_bug_becomes_an_error_record_and_the_stream_goes_on(stop: StopRequest) -> None:
    def broken(item: Delivery) -> Record:
        if item.tag == 2:
            raise RecursionError("maximum recursion depth exceeded")
        return decoder(item)

    source = FakeSource([[delivery(1), delivery(2), delivery(3)]])
    sink = ListSink()
    run(source, broken, None, [sink], Limits(), stop)
    assert source.acks == [3]
    kinds = [record.kind for record in sink.records]
    assert kinds == ["observation", "error", "observation"]
    error = sink.records[1]
    assert isinstance(error, ErrorRecord)
    assert "internal error while decoding" in error.error and "RecursionError" in error.error
    assert error.raw.startswith('{"Timestamp"')


def test_a_sink_bug_becomes_an_error_record_in_that_sink_only(stop: StopRequest) -> None:
    failing, other = ListSink(fail_on="EHBADBAD"), ListSink()
    source = FakeSource([[delivery(1), delivery(2, "EHBADBAD")]])
    run(source, decoder, None, [failing, other], Limits(), stop)
    assert [record.kind for record in failing.records] == ["observation", "error"]
    assert [record.kind for record in other.records] == ["observation", "observation"]
    assert "ZeroDivisionError" in str(failing.records[1])
    assert source.acks == [2]


def test_a_signal_in_the_loop_finishes_the_batch_then_ends(stop: StopRequest) -> None:
    def batches() -> Iterator[Sequence[Delivery]]:
        yield [delivery(1)]
        signal.raise_signal(signal.SIGTERM)  # as if it came while reading the socket
        yield [delivery(2)]
        yield [delivery(3)]

    source = FakeSource([])
    source.batches = batches  # type: ignore[method-assign]
    assert run(source, decoder, None, [ListSink()], Limits(), stop) is Ending.SIGNAL
    assert source.acks == [1, 2]
    assert stop.signum == signal.SIGTERM


def test_outside_the_loop_a_signal_raises_at_once(stop: StopRequest) -> None:
    with pytest.raises(Interrupted) as raised:
        signal.raise_signal(signal.SIGINT)
    assert raised.value.signum == signal.SIGINT


def test_a_reconnection_attempt_is_interruptible_inside_the_loop(stop: StopRequest) -> None:
    stop.deferring = True
    with pytest.raises(Interrupted), stop.interruptible():
        signal.raise_signal(signal.SIGHUP)
    stop.deferring = False


def test_overdue_waits_for_grace_then_cut(stop: StopRequest, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    assert not stop.overdue()
    stop.deferring = True
    signal.raise_signal(signal.SIGTERM)
    monkeypatch.setattr(StopRequest, "GRACE", 0.0)
    monkeypatch.setattr(StopRequest, "CUT", 3600.0)
    assert stop.overdue() and not stop.overdue(cut=True)
    stop.deferring = False


def test_a_held_up_pipe_write_gives_up_at_a_line_boundary(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "wb", closefd=False) as stream:
            sink = JsonlSink(stream, "stdout", is_stdout=True, give_up=lambda _mid_line: True)
            records = [decoder(delivery(tag)) for tag in range(1, 2001)]
            for record in records:
                sink.write(record)
            with pytest.raises(PartialFlush) as partial:
                sink.flush()  # nobody reads: the pipe fills, then the sink gives up
        out = b""
        while chunk := _read_available(read_end):
            out += chunk
        lines = out.split(b"\n")
        assert lines[-1] == b""  # ends with a whole line
        assert len(lines) - 1 == partial.value.written
        assert 0 < partial.value.written < len(records)
    finally:
        os.close(read_end)
        os.close(write_end)


def _read_available(fd: int) -> bytes:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


def test_the_reader_leaving_shows_at_tick_without_a_write() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as stream:
        sink = JsonlSink(stream, "stdout", is_stdout=True)
        sink.tick(0.0)  # a reader is there: nothing happens
        os.close(read_end)
        with pytest.raises(PipeClosed):
            sink.tick(0.0)


# -- reconnection ---------------------------------------------------------------------------

class Connects:
    """What each reconnection attempt does: raise, or return a source."""

    def __init__(self, *outcomes: Source | Exception) -> None:
        self._outcomes = list(outcomes)
        self.refreshes: list[bool] = []

    def __call__(self, refresh: bool) -> Source:
        self.refreshes.append(refresh)
        outcome = self._outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


FAST = Backoff(first=0.01, cap=0.02)


def consume(source: Source) -> tuple[list[int], list[str]]:
    tags = [item.tag for batch in source.batches() for item in batch]
    return tags, []


def reconnecting(first: Source, connects: Connects, backoff: Backoff = FAST,
                 can_refresh: bool = True) -> tuple[ReconnectingSource, list[str]]:
    notes: list[str] = []
    return ReconnectingSource(first, connects, backoff, notes.append, can_refresh,
                              rng=random.Random(1)), notes


@pytest.mark.parametrize("fault", [
    BrokerClosed("the connection was lost"),
    BrokerClosed("the broker closed the channel (406: PRECONDITION_FAILED)"),
    BrokerClosed("the broker cancelled the consumer of 'Q' (the queue is still there)"),
])
def test_a_lost_stream_reconnects_and_goes_on(fault: Exception) -> None:
    second = FakeSource([[delivery(7)]])
    connects = Connects(Unreachable("refused"), TlsHandshakeFailed("EOF in the handshake"),
                        ApiUnavailable("503"), second)
    source, notes = reconnecting(FakeSource([[delivery(1)], fault]), connects)
    tags, _ = consume(source)
    assert tags == [1, 7]
    assert notes[0].startswith(str(fault))
    assert "reconnected" in notes[-1] and "attempt 4" in notes[-1]


@pytest.mark.parametrize("fatal", [
    QueueNotFound("the queue 'Q' was deleted"),
    TlsFailure("certificate verify failed"),
])
def test_what_cannot_pass_by_itself_ends_the_run(fatal: Exception) -> None:
    source, _ = reconnecting(FakeSource([fatal]), Connects())
    with pytest.raises(type(fatal)):
        consume(source)
    source, _ = reconnecting(FakeSource([BrokerClosed("lost")]), Connects(fatal))
    with pytest.raises(type(fatal)):
        consume(source)


def test_a_refused_login_asks_for_fresh_details_once_it_may() -> None:
    connects = Connects(BrokerLoginRefused("rotated"), FakeSource([]))
    source, _ = reconnecting(FakeSource([BrokerClosed("lost")]), connects)
    consume(source)
    assert connects.refreshes == [False, True]
    source, _ = reconnecting(FakeSource([BrokerClosed("lost")]),
                             Connects(BrokerLoginRefused("rotated")), can_refresh=False)
    with pytest.raises(BrokerLoginRefused):
        consume(source)


def test_retry_after_is_never_undercut() -> None:
    connects = Connects(ApiUnavailable("429", retry_after=0.4), FakeSource([]))
    source, notes = reconnecting(FakeSource([BrokerClosed("lost")]), connects)
    consume(source)
    waits = [note for note in notes if "next in" in note]
    assert "next in 0.4 s" in waits[1]  # not the backoff's 0.02


def test_max_retries_gives_up() -> None:
    source, _ = reconnecting(FakeSource([BrokerClosed("lost")]),
                             Connects(Unreachable("a"), Unreachable("b")),
                             Backoff(first=0.01, cap=0.02, max_retries=2))
    with pytest.raises(BrokerClosed, match="gave up after 2"):
        consume(source)


def test_backoff_doubles_to_its_cap_with_jitter_in_the_upper_half() -> None:
    backoff, rng = Backoff(first=0.5, cap=30), random.Random(3)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (20, 30.0)]:
        for _ in range(50):
            assert ceiling / 2 <= backoff.delay(attempt, rng) <= ceiling


def test_error_records_from_hostile_observations_are_observations_too() -> None:
    record = decoder(delivery(1, obs=89, value="-1"))
    assert isinstance(record, Observation) and record.value == -1 and record.label is None

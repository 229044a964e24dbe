"""The stop rules shared by serve and inject: signal sets per platform, duplicates, console
close (its logic; the ctypes installation runs on Windows only), the ``with`` form."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from lagscope.stopping import (
    CONSOLE_CLOSE_BUDGET_S,
    SignalRule,
    StartStop,
    StopRequest,
    graceful_signal_names,
    graceful_signals,
    interrupt_on_stop,
    interrupt_signal_names,
    on_console_event,
)


@pytest.mark.parametrize(
    ("platform", "names"),
    [
        ("linux", ("SIGINT", "SIGTERM", "SIGHUP")),
        ("darwin", ("SIGINT", "SIGTERM", "SIGHUP")),
        ("win32", ("SIGINT", "SIGBREAK")),
    ],
)
def test_graceful_signals_per_platform(platform: str, names: tuple[str, ...]) -> None:
    assert graceful_signal_names(platform) == names


def test_graceful_signals_here_are_the_ones_this_interpreter_has() -> None:
    if sys.platform != "win32":  # SIGHUP exists only on POSIX
        assert graceful_signals("linux") == (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    # SIGBREAK does not exist outside Windows: only SIGINT is left to install.
    expected = (signal.SIGINT, signal.SIGBREAK) if hasattr(signal, "SIGBREAK") else (signal.SIGINT,)
    assert graceful_signals("win32") == expected


def test_signal_rule_first_duplicate_and_second() -> None:
    rule = SignalRule(duplicate_window_s=1.0)
    assert rule.classify(signal.SIGTERM, 10.0) == "graceful"
    assert rule.classify(signal.SIGTERM, 10.4) == "duplicate"  # uv's forwarded copy
    assert rule.classify(signal.SIGTERM, 10.99) == "duplicate"
    assert rule.classify(signal.SIGTERM, 11.0) == "immediate"  # a deliberate second one


def test_signal_rule_a_different_signal_is_never_a_duplicate() -> None:
    rule = SignalRule()
    assert rule.classify(signal.SIGTERM, 0.0) == "graceful"
    assert rule.classify(signal.SIGINT, 0.01) == "immediate"


CTRL_C_EVENT, CTRL_BREAK_EVENT, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT = (
    0,
    1,
    2,
    5,
    6,
)


@pytest.mark.parametrize("event", [CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT])
def test_console_close_starts_the_stop_and_waits_for_it(event: int) -> None:
    calls: list[tuple[str, float]] = []
    handled = on_console_event(
        event,
        lambda: calls.append(("stop", 0.0)),
        lambda budget_s: calls.append(("wait", budget_s)),
    )
    assert handled is True  # Windows ends the process once this returns
    assert calls == [("stop", 0.0), ("wait", CONSOLE_CLOSE_BUDGET_S)]
    assert CONSOLE_CLOSE_BUDGET_S < 5.0  # inside Windows' 5 s before it kills


@pytest.mark.parametrize("event", [CTRL_C_EVENT, CTRL_BREAK_EVENT])
def test_ctrl_c_and_break_go_to_the_signal_handlers(event: int) -> None:
    calls: list[str] = []
    handled = on_console_event(event, lambda: calls.append("stop"), lambda _s: calls.append("w"))
    assert handled is False  # the C runtime turns them into SIGINT / SIGBREAK
    assert calls == []


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX stand-in signals")
def test_handle_stop_signals_with_stand_ins_for_sigint_and_sigbreak() -> None:
    # The Windows set is (SIGINT, SIGBREAK); SIGUSR1 and SIGUSR2 stand in for them here, in
    # the mechanism serve and inject both use. A fake clock makes the 1 s window exact.
    import os

    from lagscope.stopping import handle_stop_signals

    now = [100.0]
    graceful: list[int] = []
    duplicates: list[int] = []
    # Looked up by name: Windows has neither (the test is skipped there).
    usr1: int = getattr(signal, "SIGUSR1")  # noqa: B009
    usr2: int = getattr(signal, "SIGUSR2")  # noqa: B009
    stand_ins = (signal.Signals(usr1), signal.Signals(usr2))
    before = {s: signal.getsignal(s) for s in stand_ins}
    with handle_stop_signals(
        graceful.append, stand_ins, clock=lambda: now[0], on_duplicate=duplicates.append
    ):
        os.kill(os.getpid(), usr2)  # "SIGBREAK": the graceful stop
        assert graceful == [usr2]
        now[0] += 0.5
        os.kill(os.getpid(), usr2)  # its copy within 1 s
        assert duplicates == [usr2]
        now[0] += 0.1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), usr1)  # "SIGINT" after it: stop at once
    assert graceful == [usr2]
    assert {s: signal.getsignal(s) for s in stand_ins} == before  # handlers restored


class _Recorder(StartStop):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> _Recorder:
        self.calls.append("start")
        return self

    def stop(self) -> None:
        self.calls.append("stop")


def test_with_starts_and_stops_even_when_the_block_raises() -> None:
    thing = _Recorder()
    with thing as entered:
        assert entered is thing and thing.calls == ["start"]
    assert thing.calls == ["start", "stop"]

    failing = _Recorder()
    with pytest.raises(ZeroDivisionError), failing:
        _ = 1 / 0
    assert failing.calls == ["start", "stop"]


@pytest.mark.parametrize("platform", ["linux", "darwin", "win32"])
def test_interrupt_signals_are_the_graceful_ones_and_hangup_on_posix(platform: str) -> None:
    names = interrupt_signal_names(platform)
    assert set(graceful_signal_names(platform)) <= set(names)
    assert ("SIGHUP" in names) is (not platform.startswith("win"))


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill of POSIX signals")
@pytest.mark.parametrize("name", interrupt_signal_names())
def test_every_stop_signal_interrupts_as_ctrl_c_and_a_copy_is_ignored(name: str) -> None:
    signum = int(getattr(signal, name))
    before = signal.getsignal(signum)
    seen: list[StopRequest] = []
    copies_interrupted: list[bool] = []
    ticks = iter([0.0, 0.5])  # the first signal, then uv's forwarded copy 0.5 s later

    def run() -> None:
        with interrupt_on_stop(clock=lambda: next(ticks)) as stop:
            seen.append(stop)
            try:
                os.kill(os.getpid(), signum)  # the handler runs as the call returns
            finally:
                try:
                    os.kill(os.getpid(), signum)
                except KeyboardInterrupt:
                    copies_interrupted.append(True)

    with pytest.raises(KeyboardInterrupt):
        run()
    assert seen[0].signum == signum and seen[0].requested
    assert copies_interrupted == []  # the cleanup is not cut short by the copy
    assert signal.getsignal(signum) == before  # handlers restored

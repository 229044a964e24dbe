"""``manage.py lagscope db`` option parsing under any input: a result or a one-line usage
error (Django's CommandError with lagscope's exit code), never a traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("unblocked_db")

FUZZ = settings(
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_nasty = st.sampled_from(
    ["", "0", "-1", "nan", "inf", "1e-300", "99999999999", "1.5", " 3", "٣", "\x00", "--json"]
) | st.text(max_size=20)


def _run(*args: str) -> str:
    out = io.StringIO()
    error: CommandError | None = None
    try:
        call_command("lagscope", "db", *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        error = exc
    if error is None:
        return out.getvalue()
    # In process, argparse's own errors come back with returncode 1 (exit 2 from a shell).
    assert error.returncode in (1, 2, 4), error
    assert "\n" not in str(error)
    return str(error)


@FUZZ
@given(option=st.sampled_from(["--samples", "--timeout", "--database", "--fail-on"]), value=_nasty)
def test_any_value_for_any_option(option: str, value: str) -> None:
    extra = () if option == "--samples" else ("--samples", "1")
    _run(option, value, *extra)


@FUZZ
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_saved_file(tmp_path: Path, content: bytes) -> None:
    saved = tmp_path / "saved.json"
    saved.write_bytes(content)
    text = _run("--load", str(saved))
    assert text.startswith("lagscope: load:") or "findings" in text

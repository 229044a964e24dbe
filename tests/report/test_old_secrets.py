"""Files saved before a redaction rule existed show no secret once loaded: every output of
``lagscope report`` and ``--load`` (terminal, ``--json``, the re-saved JSON, HTML, HAR) gets
each string through the one redactor (lagscope.redact.document, called by the loader)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lagscope.cli import main
from lagscope.diagnose import DiagnoseReport
from lagscope.diagnose.model import to_dict as diagnose_to_dict
from lagscope.probe.model import ProbeReport
from lagscope.probe.model import to_dict as probe_to_dict
from lagscope.redact import SECRET_WORDS
from support.saved_v1 import as_v1

# A name is secret when it contains one of the words, in any case, anywhere in it.
_SECRET_NAMES = st.builds(
    lambda before, word, after, upper: before + (word.upper() if upper else word) + after,
    st.sampled_from(["", "X-", "x-my-", "Proxy-", "api_"]),
    st.sampled_from(SECRET_WORDS),
    st.sampled_from(["", "-Id", "_value", "s", "-Token"]),
    st.booleans(),
)
# Marked so that no other text of a report can contain it by chance.
_SECRETS = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=6, max_size=16).map(
    lambda s: f"Zq9{s}"
)


def _planted(data: dict[str, Any], name: str, secret: str, port: int) -> dict[str, Any]:
    """A /1 file as an older lagscope could have saved it, before redaction by rule:
    the secret in a request and a response header, the URL's userinfo and a query value,
    the command line (-H and --database), a DSN in the options, a warning's URL."""
    old = copy.deepcopy(data)
    url = f"http://user:{secret}@127.0.0.1:{port}/items/?{name}={secret}&page=2"
    old["url"] = url
    if "final_url" in old:
        old["final_url"] = url
    argv = ["lagscope", "probe", url, "-H", f"{name}: {secret}"]
    argv += ["--database", f"postgresql://app:{secret}@127.0.0.1:5432/items"]
    old["command" if "command" in old else "command_line"] = argv
    old["options"]["database"] = f"host=127.0.0.1 password={secret} dbname=items"
    old["warnings"] = [*old["warnings"], f"redirected to http://u:{secret}@127.0.0.1/"]
    records = old["requests"] if "requests" in old else old["series"][-1]["requests"]
    for record in records:
        record["request_headers"] = [*record.get("request_headers", []), [name, secret]]
        record["response_headers"] = [*record.get("response_headers", []), [name, secret]]
    return old


def _outputs(saved: Path, tmp: Path, command: str) -> list[str]:
    runner = CliRunner()
    texts = []
    for args in (
        [command, "--load", str(saved)],
        [command, "--load", str(saved), "--json"],
        [command, "--load", str(saved), "-o", str(tmp / "again.json")],
        ["report", str(saved), "-o", str(tmp / "page.html"), "--har", str(tmp / "run.har")],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code in (0, 1), (args, result.output)
        texts += [result.stdout, result.stderr]
    texts += [(tmp / f).read_text(encoding="utf-8") for f in ("again.json", "page.html", "run.har")]
    return texts


@pytest.mark.parametrize("kind", ["probe", "diagnose"])
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=_SECRET_NAMES, secret=_SECRETS)
def test_no_secret_of_an_old_file_reaches_any_output(
    kind: str,
    taxed_probe: ProbeReport,
    taxed_diagnosis: DiagnoseReport,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    secret: str,
) -> None:
    data = probe_to_dict(taxed_probe) if kind == "probe" else diagnose_to_dict(taxed_diagnosis)
    old = _planted(as_v1(json.loads(json.dumps(data))), name, secret, 8000)
    tmp = tmp_path_factory.mktemp("old")
    saved = tmp / "old.json"
    saved.write_text(json.dumps(old), encoding="utf-8")
    assert secret in saved.read_text()
    for text in _outputs(saved, tmp, kind):
        assert secret not in text
    shown = (tmp / "page.html").read_text(encoding="utf-8")
    assert "user:***@127.0.0.1:8000" in shown  # the rest of the URL is kept

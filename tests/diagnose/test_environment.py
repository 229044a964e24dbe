"""The environment rung's parsers, on recorded outputs: SecurityCenter2 through PowerShell,
process lists, proxy variables. Pure; nothing here asks the system."""

from __future__ import annotations

import json

import pytest

from lagscope.diagnose.environment import (
    describe,
    gather,
    parse_security_center,
    products_from_process_names,
    proxy_facts,
)

# `Get-CimInstance -Namespace root/SecurityCenter2 -ClassName AntiVirusProduct |
#  Select-Object displayName,productState | ConvertTo-Json -Compress`, as Windows 10/11 print
# it: one product is an object, several are a list; PowerShell 5.1 may lead with a BOM.
ONE_DEFENDER = '{"displayName":"Windows Defender","productState":397568}'
TWO_PRODUCTS = (
    '\ufeff[{"displayName":"Windows Defender","productState":393472},'
    '{"displayName":"Bitdefender Antivirus","productState":266240}]'
)
OUT_OF_DATE = '{"displayName":"ESET Security","productState":397584}'


def test_one_product_on_and_up_to_date() -> None:
    (p,) = parse_security_center(ONE_DEFENDER)
    assert (p.name, p.state, p.up_to_date) == ("Windows Defender", "on", True)


def test_several_products_with_a_bom_defender_passive() -> None:
    defender, bitdefender = parse_security_center(TWO_PRODUCTS)
    # 393472 = 0x060100: Defender switched off because another product is active.
    assert (defender.name, defender.state) == ("Windows Defender", "off")
    assert (bitdefender.name, bitdefender.state) == ("Bitdefender Antivirus", "on")


def test_signatures_out_of_date() -> None:
    (p,) = parse_security_center(OUT_OF_DATE)
    assert p.state == "on" and p.up_to_date is False


def test_empty_output_and_odd_entries() -> None:
    assert parse_security_center("") == ()
    (p,) = parse_security_center('[{"displayName":"Odd AV","productState":"x"}, 5]')
    assert (p.name, p.state, p.up_to_date) == ("Odd AV", "unknown", None)
    with pytest.raises(json.JSONDecodeError):
        parse_security_center("Get-CimInstance : Invalid namespace")


def test_process_names_map_to_products() -> None:
    found = products_from_process_names(["bash", "falcon-sensor", "wdavdaemon", "clamd", "Xorg"])
    assert [p.name for p in found] == [
        "ClamAV",
        "CrowdStrike Falcon",
        "Microsoft Defender for Endpoint",
    ]
    assert products_from_process_names(["bash", "python3"]) == ()


@pytest.mark.parametrize(
    ("environ", "url", "applies"),
    [
        ({}, "http://127.0.0.1:8000/", False),
        ({"HTTP_PROXY": "http://proxy:3128"}, "http://127.0.0.1:8000/", True),
        ({"http_proxy": "http://proxy:3128", "NO_PROXY": "127.0.0.1"}, "http://127.0.0.1/", False),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://localhost/", False),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "https://localhost/", True),
        ({"ALL_PROXY": "socks5://p:1080", "no_proxy": "*"}, "http://app.local/", False),
        ({"ALL_PROXY": "socks5://p:1080", "no_proxy": ".local"}, "http://app.local/", False),
    ],
)
def test_whether_the_proxy_variables_apply(
    environ: dict[str, str], url: str, applies: bool
) -> None:
    assert proxy_facts(url, environ)[1] is applies


def test_proxy_credentials_are_never_shown() -> None:
    shown, _ = proxy_facts("http://x/", {"HTTP_PROXY": "http://user:hunter2@proxy:3128"})
    assert shown == (("http_proxy", "http://proxy:3128"),)


def test_an_unknown_platform_says_unknown_never_guesses() -> None:
    env = gather("http://127.0.0.1/", {}, platform_name="plan9")
    assert env.security_source == "unknown" and env.security_products == ()
    assert describe(env) == "unknown"

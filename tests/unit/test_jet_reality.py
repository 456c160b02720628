"""Pure pieces of issue 10: the proxy choice, the in-doubt wait verdict, the profile and
growing rules of a Jet folder, and the ledger taking a growing file's delivered version."""

from __future__ import annotations

from pathlib import Path

import pytest
from yarl import URL

from jetwatch.apis.jet.models import Job, StorageProfile
from jetwatch.apis.network import choose_proxy, safe_url, tls_context
from jetwatch.app.daemon_client import render_daemon
from jetwatch.config.settings import FolderSettings, JetSettings
from jetwatch.domain.states import HoldReason
from jetwatch.pipeline.in_doubt import Outcome, _Wait, wait_verdict
from jetwatch.targets.jet_profile import growing_problem, profile_problem
from tests.fixtures.ledger import T0

API = URL("https://jet.example.com/v1")


@pytest.mark.parametrize(
    ("configured", "env", "expected"),
    [
        ("direct", {"HTTPS_PROXY": "http://p:1"}, (None, 'proxy = "direct"')),
        ("http://cfg:3128", {"HTTPS_PROXY": "http://p:1"}, ("http://cfg:3128", "the proxy key")),
        ("", {"HTTPS_PROXY": "http://p:1"}, ("http://p:1", "HTTPS_PROXY")),
        ("", {"https_proxy": "http://low:1"}, ("http://low:1", "HTTPS_PROXY")),
        ("", {"ALL_PROXY": "http://all:1"}, ("http://all:1", "ALL_PROXY")),
        ("", {"HTTP_PROXY": "http://plain:1"}, (None, "no proxy set")),  # not for https
        ("", {}, (None, "no proxy set")),
        (
            "",
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "internal,.example.com"},
            (None, "NO_PROXY names jet.example.com"),
        ),
        (
            "",
            {"HTTPS_PROXY": "http://p:1", "no_proxy": "*"},
            (None, "NO_PROXY names jet.example.com"),
        ),
        ("", {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.org"}, ("http://p:1", "HTTPS_PROXY")),
    ],
)
def test_proxy_choice(
    configured: str, env: dict[str, str], expected: tuple[str | None, str]
) -> None:
    """The proxy key wins ("direct" = none); else the environment, NO_PROXY honoured."""
    assert choose_proxy(API, configured, env) == expected


def test_http_api_uses_http_proxy() -> None:
    """An http:// API (the emulator, an on-prem IM) takes HTTP_PROXY."""
    assert choose_proxy(URL("http://im.local/api"), "", {"HTTP_PROXY": "http://p:2"}) == (
        "http://p:2",
        "HTTP_PROXY",
    )


def test_proxy_password_is_masked_and_a_bad_ca_file_is_refused(tmp_path: Path) -> None:
    """What check prints never holds the proxy password; a CA file that is no PEM is a
    ValueError (the caller names the key), never a silently unverified connection."""
    assert safe_url("http://u:secret@p:3128") == "http://u:***@p:3128"
    assert safe_url("http://p:3128") == "http://p:3128"
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="cannot load CA certificates"):
        tls_context(bad)


def test_proxy_and_ca_file_keys_are_validated(tmp_path: Path) -> None:
    """proxy must be "", "direct" or an http(s) URL (the value is never echoed: it may hold
    a password); ca_file must be a file."""
    with pytest.raises(ValueError, match="must be") as caught:
        JetSettings(proxy="socks5://user:pw@x:1")
    assert "pw@" not in str(caught.value).split("input_value")[0]
    with pytest.raises(ValueError, match="is not a file"):
        JetSettings(ca_file=tmp_path / "missing.pem")
    assert JetSettings(ca_file="").ca_file is None  # type: ignore[arg-type]


def _wait(watched: set[str], deadline: float = 100.0) -> _Wait:
    return _Wait("f", 0.0, deadline, frozenset(watched), len(watched), 100.0)


def test_wait_verdict() -> None:
    """Sent again once nothing watched is in flight (new work does not count), or at the
    deadline; otherwise it waits."""
    assert wait_verdict(_wait(set()), frozenset({"t9"}), 1.0) is Outcome.RESENT_IDLE
    assert wait_verdict(_wait({"t1"}), frozenset({"t2"}), 1.0) is Outcome.RESENT_IDLE
    assert wait_verdict(_wait({"t1"}), frozenset({"t1", "t2"}), 1.0) is None
    assert wait_verdict(_wait({"t1"}), frozenset({"t1"}), 100.0) is Outcome.RESENT_AFTER_MAX_WAIT


def _job(**transfer_options: object) -> Job:
    data = {
        "source": {"storageProfileId": "src"},
        "destination": {"storageProfileId": "dst"},
        "transferOptions": transfer_options or None,
    }
    return Job.model_validate({"jobId": "j", "actions": [{"type": "TRANSFER", "data": data}]})


PROFILES = [StorageProfile(storage_profile_id="src", url="file:///srv/ingest")]


@pytest.mark.parametrize(
    ("path", "profile_root", "problem"),
    [
        ("/srv/ingest", None, None),
        ("/srv/ingest/in", "/srv/ingest", None),
        ("/srv/ingest/in", None, ("profile_root", HoldReason.OUTSIDE_PROFILE)),
        ("/srv/ingest/in", "/srv/ingest/in", ("profile_root", HoldReason.OUTSIDE_PROFILE)),
        ("/tmp/elsewhere", None, ("path", HoldReason.OUTSIDE_PROFILE)),
        ("/srv/ingestion", None, ("path", HoldReason.OUTSIDE_PROFILE)),  # a prefix, not under
        ("/data/in", "/data", None),  # a container sees the profile at /data
    ],
)
def test_profile_rule(
    path: str, profile_root: str | None, problem: tuple[str, HoldReason] | None
) -> None:
    """Under the profile with profile_root = the profile's path, or mounted elsewhere and
    said so by profile_root; anything else is held (Jet would copy another file)."""
    folder = FolderSettings(path=Path(path), job="j", profile_root=profile_root)
    found = profile_problem(folder, _job(), PROFILES)
    assert (None if found is None else (found.key, found.hold)) == problem


def test_profile_rule_follows_symlinks(tmp_path: Path) -> None:
    """A folder reached through a symlink counts where the link leads; a link to somewhere
    else is outside, whatever its spelling."""
    profile = tmp_path / "ingest"
    (profile / "in").mkdir(parents=True)
    (tmp_path / "link").symlink_to(profile)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "wrong").symlink_to(tmp_path / "elsewhere")
    profiles = [StorageProfile(storage_profile_id="src", url=profile.as_uri())]
    linked = FolderSettings(path=tmp_path / "link", job="j")
    assert profile_problem(linked, _job(), profiles) is None
    inside = FolderSettings(path=tmp_path / "link" / "in", job="j", profile_root=tmp_path / "link")
    assert profile_problem(inside, _job(), profiles) is None
    wrong = profile_problem(FolderSettings(path=tmp_path / "wrong", job="j"), _job(), profiles)
    assert wrong is not None
    assert (wrong.key, wrong.hold) == ("path", HoldReason.OUTSIDE_PROFILE)


def test_profile_rule_missing_and_cloud_profiles() -> None:
    """A missing source profile is a problem of the job; a cloud profile cannot be compared."""
    folder = FolderSettings(path=Path("/x"), job="j")
    missing = profile_problem(folder, _job(), [])
    assert missing is not None
    assert missing.key == "job"
    cloud = [StorageProfile(storage_profile_id="src", url="https://bucket.example/x")]
    assert profile_problem(folder, _job(), cloud) is None


def test_growing_rule() -> None:
    """growing = true needs areGrowingObjects on the job; other folders do not care."""
    growing = FolderSettings(path=Path("/srv/ingest"), job="j", growing=True)
    plain = FolderSettings(path=Path("/srv/ingest"), job="j")
    found = growing_problem(growing, _job())
    assert found is not None
    assert (found.key, found.hold) == ("growing", HoldReason.NOT_GROWING)
    assert growing_problem(growing, _job(areGrowingObjects=True)) is None
    assert growing_problem(plain, _job()) is None


def test_status_shows_batches_waiting_in_doubt() -> None:
    """``jetwatch status`` (the daemon section) lists the batches waiting in doubt."""
    view = {
        "url": "http://127.0.0.1:9108",
        "reachable": True,
        "ready": True,
        "reasons": [],
        "jobs": [],
        "in_doubt": [
            {
                "batch_id": 7,
                "folder": "cams",
                "since": T0,
                "in_flight": 1,
                "max_wait_s": 3600.0,
                "resend_at_latest_in_s": 3590.0,
            }
        ],
    }
    text = render_daemon(view)
    assert "IN DOUBT (1)" in text
    assert text.splitlines()[-1].split() == ["7", "cams", "1", "3590s"]

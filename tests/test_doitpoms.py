"""DoITPoMS client, parser, cache, importer and CLI against a local stand-in site."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from microlib_gui.core.doitpoms import Cache, Client, NotFoundError, OfflineError, ServerError
from microlib_gui.core.doitpoms.client import USER_AGENT, DoitpomsError, resolve_base_url
from microlib_gui.core.doitpoms.importer import import_micrographs, pending_import
from microlib_gui.core.doitpoms.parse import elements_from_composition, parse_browse_page, parse_full_record
from microlib_gui.core.jobs import run_inline

from conftest import load_doitpoms_site_module

FIXTURES = Path(__file__).parent / "fixtures" / "doitpoms"


site_mod = load_doitpoms_site_module()


@pytest.fixture
def site(make_doitpoms_site):
    return make_doitpoms_site()


@pytest.fixture
def server(site):
    return site.server


@pytest.fixture
def client(site, tmp_path):
    c = Client(site.base_url, cache=Cache(tmp_path / "cache"), retries=2, backoff_s=0.01, timeout=(2.0, 0.5))
    yield c
    c.close()


# -- parsing (no network) -------------------------------------------------------------

def test_parse_full_record_fields():
    rec = parse_full_record((FIXTURES / "full_record_1.html").read_bytes(), 1)
    assert rec.brief_descr == "Hypoeutectic Al-Si casting"
    assert rec.keywords[:3] == ["alloy", "aluminium", "casting"]
    assert rec.category == ["Metal or alloy"]
    assert rec.element == ["Al", "Si"]
    assert rec.technique == "Reflected light microscopy"
    assert "Al–Si eutectic" in rec.long_desc  # HTML entity decoded
    assert "Creative Commons" in rec.licence
    assert rec.errors == {}


def test_parse_reordered_fields_with_colons_and_nbsp():
    rec = parse_full_record((FIXTURES / "full_record_6.html").read_bytes(), 6)
    assert rec.category == ["Metal or alloy", "Phase transformation"]
    assert "cementite" in rec.keywords and "pearlite" in rec.keywords
    assert rec.element == ["Fe", "C"]
    assert rec.long_desc.startswith("Alternating lamellae of ferrite and cementite formed")


def test_parse_malformed_record_reports_fields_not_crash():
    raw = (FIXTURES / "full_record_77_malformed.html").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the fixture really holds non-UTF-8 bytes
    rec = parse_full_record(raw, 77)
    assert rec.brief_descr == 'Ferrite grains in "as-received" iron, etched'
    assert rec.category == ["Metal or alloy", "Grain structure"]
    assert rec.technique == "Reflected light microscopy"
    assert rec.contributor.startswith("J. M") and "&" in rec.contributor
    assert "keywords" in rec.errors and "composition" in rec.errors
    assert "brief_descr" not in rec.errors


@pytest.mark.parametrize("junk", [b"", b"\x00\xff\xfe garbage", b"<dl><dt>", "<dt>Keywords</dt><dd>a, b"])
def test_parse_never_raises_on_junk(junk):
    rec = parse_full_record(junk, 5)
    assert rec.id == 5 and "brief_descr" in rec.errors


def test_elements_from_composition():
    assert elements_from_composition("Ti-6Al-4V") == ["Ti", "Al", "V"]
    assert elements_from_composition("Al2O3, SiC") == ["Al", "O", "Si", "C"]
    assert elements_from_composition("Brass (copper, zinc)") == ["Cu", "Zn"]
    assert elements_from_composition("As cast steel") == []


def test_parse_browse_page_links_and_captions():
    page = parse_browse_page((FIXTURES / "browse_cat1.html").read_bytes(), "http://h/miclib/browse.php?cat=1")
    assert [i.id for i in page.items] == [1, 6, 39]
    assert page.items[0].thumb == "http://h/miclib/micrographs/small/000001.jpg"
    assert page.items[2].brief_descr == "Lead–tin eutectic"  # caption beside the link
    assert page.links == ["http://h/miclib/browse.php?cat=1&page=2"]


def test_base_url_resolution(monkeypatch):
    monkeypatch.delenv("MICROLIB_DOITPOMS_URL", raising=False)
    assert resolve_base_url() == "https://www.doitpoms.ac.uk/miclib/"
    monkeypatch.setenv("MICROLIB_DOITPOMS_URL", "http://mirror.example/miclib")
    assert resolve_base_url() == "http://mirror.example/miclib/"
    assert resolve_base_url("https://other.example/x/") == "https://other.example/x/"
    with pytest.raises(DoitpomsError):
        resolve_base_url("ftp://nope/")


# -- client against the local server ----------------------------------------------------

def test_record_and_image_are_fetched_once_then_cached(client, site):
    rec = client.record(1)
    assert rec.brief_descr == "Hypoeutectic Al-Si casting"
    assert rec.url == site.base_url + "micrograph.php?id=1"
    img = client.large_image(1)
    assert img[:3] == b"\xff\xd8\xff"
    client.record(1)
    client.large_image(1)
    assert site.hits["full_record.php?id=1"] == 1
    assert site.hits["micrographs/large/000001.jpg"] == 1
    assert site.user_agents == {USER_AGENT}
    assert USER_AGENT.startswith("MicroLibStudio/")


def test_404_says_micrograph_does_not_exist(client):
    with pytest.raises(NotFoundError, match="micrograph 4242 does not exist"):
        client.record(4242)
    assert not client.offline


def test_500_then_success_is_retried(client, site):
    site.faults["full_record.php?id=6"] = ["500", "500"]
    rec = client.record(6)
    assert rec.brief_descr == "Pearlite in a plain carbon steel"
    assert site.hits["full_record.php?id=6"] == 3


def test_5xx_after_retries_is_a_clear_error(client, site):
    site.faults["full_record.php?id=6"] = ["500"] * 5
    with pytest.raises(ServerError, match=r"server error 500 .* after 3 tries"):
        client.record(6)
    assert not client.offline


def test_timeout_then_success(client, site):
    site.faults["full_record.php?id=39"] = ["sleep"]
    rec = client.record(39)
    assert rec.element == ["Pb", "Sn"]
    assert site.hits["full_record.php?id=39"] == 2


def test_timeout_every_time_goes_offline_and_serves_cache(client, site):
    client.record(1)  # cached while online
    site.faults["full_record.php?id=54"] = ["sleep"] * 3
    with pytest.raises(OfflineError, match="did not answer"):
        client.record(54)
    assert client.offline
    assert client.record(1).brief_descr == "Hypoeutectic Al-Si casting"
    with pytest.raises(OfflineError):
        client.record(70)  # not cached: fails at once, no request made
    assert site.hits["full_record.php?id=70"] == 0


def test_unreachable_server_is_offline(tmp_path):
    c = Client("http://127.0.0.1:9/miclib/", cache=Cache(tmp_path), retries=1, backoff_s=0.01, timeout=(1, 1))
    with pytest.raises(OfflineError, match="cannot reach"):
        c.record(1)
    assert c.offline
    res = c.search("anything")
    assert res.offline and res.records == []


def test_connection_reset_then_success(client, site):
    site.faults["full_record.php?id=70"] = ["reset"]
    rec = client.record(70)
    assert rec.element == ["Al", "O"]
    assert site.hits["full_record.php?id=70"] == 2


@pytest.mark.parametrize("fault", ["truncate", "short-length"])
def test_truncated_image_is_never_kept(client, site, fault):
    rel = "micrographs/large/000006.jpg"
    site.faults[rel] = [fault] * 3
    with pytest.raises(DoitpomsError, match="incomplete|cut short"):
        client.large_image(6)
    target = client.cache.path_for(rel)
    assert not target.exists()
    assert not list(target.parent.glob(".tmp-*"))  # no partial download left behind
    # once the server sends the whole file it is accepted
    assert client.large_image(6)[:3] == b"\xff\xd8\xff"
    assert target.exists()


def test_search_crawls_browse_pages_then_works_offline(client, site, tmp_path):
    res = client.search("steel")
    assert {r.id for r in res.records} == {6, 54}
    assert site.hits["browse.php?cat=1&page=2"] == 1  # followed pagination
    assert not any("elsewhere" in k for k in site.hits)
    assert {r.id for r in client.search("", element="Sn").records} == {39}
    assert {r.id for r in client.search("", category="ceramic").records} == {70}
    assert {r.id for r in client.search("", technique="SEM").records} == {6, 70}
    # a fresh offline client on the same cache finds the same records
    off = Client(site.base_url, cache=Cache(tmp_path / "cache"), offline=True)
    res = off.search("eutectic")
    assert res.offline and {r.id for r in res.records} == {1, 39}


def test_concurrency_never_exceeds_four(site, tmp_path, server):
    # Count requests in flight on the server side with a slow handler.
    import threading
    import time

    state = {"now": 0, "max": 0}
    lock = threading.Lock()
    inner = site.handler

    def slow(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        try:
            return inner(request)
        finally:
            with lock:
                state["now"] -= 1

    server.clear_all_handlers()
    server.expect_request(re.compile(r"^/miclib/.*")).respond_with_handler(slow)
    c = Client(site.base_url, cache=Cache(tmp_path / "c2"), max_concurrent=4, backoff_s=0.01)
    got, errors = c.records([1, 6, 39, 54, 70, 77, 1])
    assert set(got) == {1, 6, 39, 54, 70, 77} and errors == {}
    assert 2 <= state["max"] <= 4  # parallel, but never more than four


# -- import ------------------------------------------------------------------------------

def test_import_adds_entries_with_metadata(client, site, library):
    events = []
    res = run_inline(import_micrographs, {"library": str(library.root), "ids": [1, 39], "client": client},
                     on_progress=events.append)
    assert res["added"] == [1, 39] and res["failed"] == {}
    e = library.find_entry("doitpoms:39")
    assert e.source == "doitpoms" and e.id == 39
    m = e.metadata
    assert m["brief_descr"] == "Lead–tin eutectic"
    assert m["element"] == ["Pb", "Sn"] and m["keywords"][0] == "eutectic"
    assert m["category"] == ["Metal or alloy", "Phase diagram"]
    assert m["doitpoms_url"].endswith("micrograph.php?id=39")
    assert "Creative Commons" in m["licence"]
    assert library.original_path(39).read_bytes()[:3] == b"\xff\xd8\xff"
    assert events[-1].step == events[-1].total == 2


def test_import_continues_past_failures_and_resumes(client, site, library):
    site.faults["micrographs/large/000006.jpg"] = ["500"] * 3
    res = run_inline(import_micrographs, {"library": str(library.root), "ids": [4242, 6, 70], "client": client})
    assert res["added"] == [70]
    assert res["failed"][4242] == "micrograph 4242 does not exist"
    assert "500" in res["failed"][6]
    assert pending_import(library.root, client.cache) == [6]  # 404 is final, 5xx worth retrying
    res2 = run_inline(import_micrographs, {"library": str(library.root), "ids": [6, 70], "client": client})
    assert res2["added"] == [6] and res2["skipped"] == [70]
    assert pending_import(library.root, client.cache) == []
    assert site.hits["micrographs/large/000070.jpg"] == 1  # the finished one was not downloaded again


def test_import_refuses_truncated_image(client, site, library):
    site.faults["micrographs/large/000054.jpg"] = ["truncate"] * 3
    res = run_inline(import_micrographs, {"library": str(library.root), "ids": [54], "client": client})
    assert res["added"] == [] and "incomplete or corrupt" in res["failed"][54]
    assert library.list_entries() == []
    assert not library.entry_dir(54).exists()


def test_import_applies_pending_microlib_annotations(client, site, library, tmp_path):
    ann = {"0": {"data_path": "data/micrographs_png/000001.png", "data_type": "twophase",
                 "phases": [60, 200], "vox_size": 0.5}}
    (tmp_path / "anns.json").write_text(json.dumps(ann))
    assert library.import_microlib_anns(tmp_path / "anns.json")["pending"] == [1]
    run_inline(import_micrographs, {"library": str(library.root), "ids": [1], "client": client})
    assert library.pending_annotations() == {}
    assert library.get_annotations(1).get("data_type") == "twophase"


# -- CLI ----------------------------------------------------------------------------------

def test_cli_search_show_import(site, tmp_path, monkeypatch, capsys):
    from microlib_gui.cli import main

    monkeypatch.setenv("MICROLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MICROLIB_DOITPOMS_URL", site.base_url)
    lib = tmp_path / "lib"
    assert main(["doitpoms", "search", "eutectic", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in out["records"]} == {1, 39} and out["offline"] is False
    assert main(["doitpoms", "search", "", "--element", "Fe", "--technique", "light"]) == 0
    text = capsys.readouterr().out
    assert "54" in text and "Duplex" in text and "Pearlite" not in text
    assert main(["doitpoms", "show", "77", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["brief_descr"].startswith("Ferrite grains") and "composition" in shown["errors"]
    assert main(["doitpoms", "show", "4242"]) == 2
    assert "micrograph 4242 does not exist" in capsys.readouterr().err
    assert main(["--library", str(lib), "doitpoms", "import", "1", "70", "4242"]) == 3
    captured = capsys.readouterr()
    assert "added 2" in captured.out and "4242" in captured.err
    assert main(["--library", str(lib), "library", "show", "doitpoms:70", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["element"] == ["Al", "O"]


def test_cli_offline_flag_and_bad_url(tmp_path, monkeypatch, capsys, site):
    from microlib_gui.cli import main

    monkeypatch.setenv("MICROLIB_CACHE", str(tmp_path / "cache"))
    assert main(["doitpoms", "show", "1", "--base-url", site.base_url]) == 0
    capsys.readouterr()
    assert main(["doitpoms", "show", "1", "--offline", "--base-url", "http://127.0.0.1:9/"]) == 0
    assert "Hypoeutectic" in capsys.readouterr().out
    assert main(["doitpoms", "show", "6", "--offline"]) == 2
    assert "offline" in capsys.readouterr().err
    assert main(["doitpoms", "search", "x", "--base-url", "not a url"]) == 2


def test_refresh_refetches_a_record(client, site):
    client.record(54)
    client.record(54, refresh=True)
    assert site.hits["full_record.php?id=54"] == 2


def test_oversized_image_is_refused_without_retry(client, site, monkeypatch):
    from microlib_gui.core.doitpoms import client as client_mod

    monkeypatch.setattr(client_mod, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(DoitpomsError, match="larger than"):
        client.large_image(70)
    assert site.hits["micrographs/large/000070.jpg"] == 1
    assert not client.cache.path_for("micrographs/large/000070.jpg").exists()


@pytest.fixture
def busy_server():
    """A server that answers 503 with the given Retry-After the first time, then the page; hit times kept."""
    import time

    from pytest_httpserver import HTTPServer
    from werkzeug.wrappers import Response

    srv = HTTPServer(host="127.0.0.1", threaded=True)
    srv.start()
    srv.hit_times, srv.retry_after = [], "0"

    def handler(request):
        srv.hit_times.append(time.monotonic())
        if len(srv.hit_times) == 1:
            return Response("busy", status=503, headers={"Retry-After": srv.retry_after})
        return Response("<html><body>the page</body></html>", content_type="text/html")

    srv.expect_request("/miclib/browse.php").respond_with_handler(handler)
    yield srv
    srv.clear()
    srv.stop()


def _busy_client(busy_server, tmp_path):
    return Client(busy_server.url_for("/miclib/"), cache=Cache(tmp_path / "cache"), retries=2, backoff_s=0.01,
                  timeout=(2.0, 2.0))


def test_503_with_retry_after_then_success(busy_server, tmp_path):
    # The server asks for 1.5 s: the second try comes no sooner (the backoff alone would be 10 ms).
    busy_server.retry_after = "1.5"
    c = _busy_client(busy_server, tmp_path)
    assert b"the page" in c.fetch("browse.php")
    first, second = busy_server.hit_times
    assert 1.5 <= second - first < 1.5 + 1.0, second - first


@pytest.mark.parametrize("value", ["3600", "inf", "1e400"])
def test_retry_after_is_capped(busy_server, tmp_path, monkeypatch, value):
    # A server asking for an hour (or forever) is waited for MAX_RETRY_AFTER_S at most.
    from microlib_gui.core.doitpoms import client as client_mod

    monkeypatch.setattr(client_mod, "MAX_RETRY_AFTER_S", 0.8)
    busy_server.retry_after = value
    c = _busy_client(busy_server, tmp_path)
    assert b"the page" in c.fetch("browse.php")
    first, second = busy_server.hit_times
    assert 0.8 <= second - first < 0.8 + 1.0, second - first  # not the hour, nor some other cap


@pytest.mark.parametrize("value", ["soon", "nan", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_retry_after_that_is_not_a_wait_falls_back_to_the_backoff(busy_server, tmp_path, value):
    busy_server.retry_after = value
    c = _busy_client(busy_server, tmp_path)
    assert b"the page" in c.fetch("browse.php")
    first, second = busy_server.hit_times
    assert second - first < 1.0, second - first  # the 10 ms backoff, not a wait read from the header


def test_cli_import_resume(site, tmp_path, monkeypatch, capsys):
    from microlib_gui.cli import main

    monkeypatch.setenv("MICROLIB_CACHE", str(tmp_path / "cache"))
    lib = str(tmp_path / "lib")
    site.faults["micrographs/large/000039.jpg"] = ["500"] * 4
    assert main(["--library", lib, "doitpoms", "import", "39", "1", "--base-url", site.base_url]) == 3
    out = capsys.readouterr()
    assert "--resume" in out.out and "server error 500" in out.err
    assert main(["--library", lib, "doitpoms", "import", "--resume", "--base-url", site.base_url, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["added"] == [39] and res["pending"] == []
    assert main(["--library", lib, "doitpoms", "import", "--resume"]) == 2  # nothing left
    assert "nothing left to resume" in capsys.readouterr().err

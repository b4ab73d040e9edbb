"""HTTP client for the DoITPoMS Micrograph Library (or a mirror of it).

* Verified TLS (requests' default CA bundle, or ``REQUESTS_CA_BUNDLE``), connect
  and read timeouts, retries with exponential backoff on 5xx answers, timeouts,
  dropped connections and bodies cut short.
* An overall deadline for every request, retries included (``deadline_s``,
  default 120 s, ``$MICROLIB_DOITPOMS_DEADLINE``): a read timeout bounds each
  wait for a byte, so a server sending one byte every few seconds would
  otherwise hold a request for hours. At the deadline the request's socket is
  shut down, which ends a read blocked in the headers or the body.
* At most ``max_concurrent`` (4) requests in flight per client, whatever the
  number of threads using it.
* A User-Agent naming the app and its version.
* Everything fetched goes to the on-disk :class:`~.cache.Cache`; record pages
  and images never change, so a cached copy is used without asking the server.
  Browse pages are refreshed after a day. When the server cannot be reached the
  client goes offline and serves what is cached.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urljoin, urlparse

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ... import __version__
from ..atomic import atomic_path
from ..errors import ImageError, MicrolibError
from ..images import load_image_bytes
from .cache import Cache
from .parse import BrowseItem, Record, parse_browse_page, parse_full_record, parse_micrograph_page

DEFAULT_BASE_URL = "https://www.doitpoms.ac.uk/miclib/"
ENV_BASE_URL = "MICROLIB_DOITPOMS_URL"
USER_AGENT = f"MicroLibStudio/{__version__}"
BROWSE_START = "browse.php"
BROWSE_MAX_AGE_S = 24 * 3600.0
#: Largest page and image accepted (a server sending more is refused, not retried).
MAX_PAGE_BYTES = 20 << 20
MAX_IMAGE_BYTES = 400 << 20
#: Longest Retry-After honoured between tries, in seconds.
MAX_RETRY_AFTER_S = 30.0
#: Longest one request may take, retries and waits included, in seconds.
DEFAULT_DEADLINE_S = 120.0
ENV_DEADLINE = "MICROLIB_DOITPOMS_DEADLINE"


class DoitpomsError(MicrolibError):
    """A DoITPoMS page or image could not be had."""


class NotFoundError(DoitpomsError):
    """The server says the page does not exist (404)."""


class OfflineError(DoitpomsError):
    """The server cannot be reached (DNS, refused, timeout) and nothing is cached."""


class ServerError(DoitpomsError):
    """The server kept failing (5xx) after every retry."""


def resolve_base_url(url: str | None = None) -> str:
    """``url``, else ``$MICROLIB_DOITPOMS_URL``, else the public site; always ending in ``/``."""
    url = (url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise DoitpomsError(f"{url!r} is not an http(s) URL for the DoITPoMS library")
    return url if url.endswith("/") else url + "/"


def record_path(doitpoms_id: int) -> str:
    return f"full_record.php?id={int(doitpoms_id)}"


def micrograph_path(doitpoms_id: int) -> str:
    return f"micrograph.php?id={int(doitpoms_id)}"


def image_path(doitpoms_id: int, size: str = "large") -> str:
    """``micrographs/large/000012.jpg`` (size ``large`` or ``small``)."""
    return f"micrographs/{size}/{int(doitpoms_id):06d}.jpg"


@dataclass
class SearchResult:
    records: list[Record]
    offline: bool = False
    errors: dict[int, str] = field(default_factory=dict)  # id → why its record is missing
    message: str = ""  # why the listing could not be refreshed, if it could not


def matches(rec: Record, text: str = "", category: str | None = None, technique: str | None = None,
            element: str | None = None) -> bool:
    """Whether ``rec`` has every word of ``text`` and passes the filters (case-insensitive)."""
    hay = rec.search_text()
    if any(word not in hay for word in (text or "").lower().split()):
        return False
    if category and not any(category.lower() in c.lower() for c in rec.category):
        return False
    if technique and technique.lower() not in rec.technique.lower():
        return False
    if element and element.lower() not in (e.lower() for e in rec.element):
        return False
    return True


class Client:
    """Fetch DoITPoMS pages and images through the cache.

    Parameters
    ----------
    base_url : str, optional
        The library's address; default ``$MICROLIB_DOITPOMS_URL`` or the public site.
    cache : Cache, optional
        Default: :class:`Cache` in ``$MICROLIB_CACHE`` or the user cache dir.
    offline : bool
        Never use the network; serve only what is cached.
    timeout : (float, float)
        Connect and read timeouts in seconds.
    retries : int
        Extra tries after a 5xx, timeout or dropped connection.
    backoff_s : float
        First wait between tries; doubled each time.
    max_concurrent : int
        Requests allowed in flight at once (all threads together).
    deadline_s : float, optional
        Longest one request may take in all, retries included (default
        ``$MICROLIB_DOITPOMS_DEADLINE`` or :data:`DEFAULT_DEADLINE_S`).
    """

    def __init__(self, base_url: str | None = None, cache: Cache | None = None, offline: bool = False,
                 timeout: tuple[float, float] = (5.0, 30.0), retries: int = 3, backoff_s: float = 0.5,
                 max_concurrent: int = 4, deadline_s: float | None = None):
        self.base_url = resolve_base_url(base_url)
        self.cache = cache if cache is not None else Cache()
        self.offline = offline
        self.offline_reason = "offline mode" if offline else ""
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.max_concurrent = max(1, int(max_concurrent))
        self.deadline_s = resolve_deadline(deadline_s)
        self._slots = threading.BoundedSemaphore(self.max_concurrent)
        self._listed_at = -1e18  # monotonic time of the last browse crawl by this client
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.verify = True  # never turned off: a mirror needs a valid certificate
        adapter = _DeadlineAdapter(pool_connections=2, pool_maxsize=self.max_concurrent)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def close(self) -> None:
        self.session.close()

    def url(self, rel: str) -> str:
        return urljoin(self.base_url, rel)

    def go_online(self) -> None:
        """Leave offline mode (the next request tries the network again)."""
        self.offline = False
        self.offline_reason = ""

    def _go_offline(self, reason: str) -> None:
        self.offline = True
        self.offline_reason = reason

    # -- HTTP ------------------------------------------------------------------
    def _request(self, rel: str, what: str,
                 sink: Callable[[requests.Response, float], bytes | None]) -> bytes | None:
        """GET ``rel`` with retries, all within :attr:`deadline_s`.

        ``sink(response, deadline)`` reads the body (it may raise to trigger a retry);
        ``deadline`` is the :func:`time.monotonic` time by which it must be done.
        """
        if self.offline:
            raise OfflineError(f"{what} is not in the cache and the library is offline ({self.offline_reason})")
        url = self.url(rel)
        host = urlparse(url).netloc
        deadline = time.monotonic() + self.deadline_s
        too_slow = f"{host} did not deliver it within {self.deadline_s:g} s"
        last = ""
        wait_s = 0.0
        tries = 0
        kind = None
        for attempt in range(self.retries + 1):
            if attempt:
                pause = max(self.backoff_s * 2 ** (attempt - 1), wait_s)
                if time.monotonic() + pause >= deadline:
                    break  # no time left for another try
                time.sleep(pause)
            kind, wait_s = None, 0.0
            tries += 1
            dog = _Watchdog(deadline)
            try:
                try:
                    with self._slots, dog:
                        with self._get_same_host(url, what) as resp:
                            if resp.status_code == 404:
                                raise NotFoundError(f"{what} does not exist (404 from {host})")
                            if resp.status_code >= 500:
                                kind, last = "server", f"server error {resp.status_code} from {host}"
                                wait_s = _retry_after(resp.headers.get("Retry-After"))
                            elif resp.status_code >= 400:
                                raise DoitpomsError(f"{what}: {host} refused the request ({resp.status_code})")
                            else:
                                data = sink(resp, deadline)
                                if dog.fired or time.monotonic() >= deadline:
                                    # a socket cut in the headers can look like an empty answer
                                    raise _TooSlow()
                                return data
                except (requests.exceptions.RequestException, _CutShort, OSError):
                    if dog.fired or time.monotonic() >= deadline:
                        raise _TooSlow() from None  # the watchdog cut it: say so, not "connection reset"
                    raise
            except _TooSlow:
                kind, last = "offline", too_slow
                break
            except requests.exceptions.SSLError as exc:
                raise DoitpomsError(f"{host}: TLS certificate check failed ({_short(exc)})") from None
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
                kind, last = "cut", f"the download was cut short ({_short(exc)})"
            except requests.exceptions.ConnectTimeout:
                kind, last = "offline", f"connecting to {host} timed out"
            except requests.exceptions.ReadTimeout:
                kind, last = "offline", f"{host} did not answer in {self.timeout[1]:g} s"
            except requests.exceptions.ConnectionError as exc:
                kind, last = "offline", f"cannot reach {host} ({_connection_reason(exc)})"
            except requests.exceptions.InvalidURL as exc:
                raise DoitpomsError(f"bad URL {url} ({_short(exc)})") from None
            except _CutShort as exc:
                kind, last = "cut", str(exc)
            except requests.exceptions.RequestException as exc:  # redirects loop, bad header, ...
                raise DoitpomsError(f"{what}: request to {host} failed ({_short(exc)})") from None
        n = f"{tries} {'try' if tries == 1 else 'tries'}"
        if kind == "offline":
            self._go_offline(last)
            raise OfflineError(f"{what}: {last} after {n}; offline, only cached pages can be used")
        if kind == "server":
            raise ServerError(f"{what}: {last} after {n}")
        raise DoitpomsError(f"{what}: {last} after {n}")

    def _get_same_host(self, url: str, what: str, max_redirects: int = 5) -> requests.Response:
        """GET following redirects only within the same host (scheme and port included).

        A redirect to another host is refused: content for the library must come from
        the address the user chose, and nothing is fetched from the other host.
        """
        origin = urlparse(url)
        for _ in range(max_redirects + 1):
            resp = self.session.get(url, timeout=self.timeout, stream=True, allow_redirects=False)
            if not resp.is_redirect:
                return resp
            target = urljoin(url, resp.headers.get("Location", ""))
            resp.close()
            dest = urlparse(target)
            if (dest.scheme, dest.netloc) != (origin.scheme, origin.netloc):
                raise DoitpomsError(f"{what}: {origin.netloc} redirected to another host "
                                    f"({dest.scheme}://{dest.netloc}); refused")
            url = target
        raise DoitpomsError(f"{what}: too many redirects from {origin.netloc}")

    def fetch(self, rel: str, what: str = "", max_age_s: float | None = None) -> bytes:
        """A page's bytes: from the cache if there (and fresh enough), else downloaded and cached.

        When the network fails, a stale cached copy is returned instead of an error.
        """
        what = what or rel
        data = self.cache.get(rel, max_age_s)
        if data is not None:
            return data
        try:
            data = self._request(rel, what, lambda r, deadline: _read_limited(r, MAX_PAGE_BYTES, what, deadline))
        except OfflineError:
            stale = self.cache.get(rel)
            if stale is not None:
                return stale
            raise
        assert data is not None
        self.cache.put(rel, data)
        return data

    def fetch_image(self, rel: str, what: str = "", min_side: int = 64) -> bytes:
        """An image's bytes, downloaded to a temp file and kept only if complete and decodable."""
        what = what or rel
        target = self.cache.path_for(rel)
        if target.is_file():
            return target.read_bytes()

        def sink(resp: requests.Response, deadline: float) -> bytes:
            with atomic_path(target) as tmp:
                with open(tmp, "wb") as fh:
                    size = 0
                    for chunk in resp.iter_content(1 << 16):
                        if time.monotonic() > deadline:
                            raise _TooSlow()
                        size += len(chunk)
                        if size > MAX_IMAGE_BYTES:
                            raise DoitpomsError(f"{what}: larger than {MAX_IMAGE_BYTES >> 20} MB; refused")
                        fh.write(chunk)
                if time.monotonic() >= deadline:  # cut by the watchdog: never kept
                    raise _TooSlow()
                raw = tmp.read_bytes()
                try:
                    load_image_bytes(raw, name=what, min_side=min_side)
                except ImageError as exc:
                    # Raising inside atomic_path deletes the temp file: nothing partial is kept.
                    raise _CutShort(f"the image is incomplete or corrupt ({exc})") from None
            return raw

        data = self._request(rel, what, sink)
        assert data is not None
        return data

    # -- DoITPoMS objects -----------------------------------------------------------
    def record(self, doitpoms_id: int, refresh: bool = False) -> Record:
        """The full record of micrograph ``doitpoms_id`` (cached in the index)."""
        doitpoms_id = int(doitpoms_id)
        if doitpoms_id <= 0:
            raise DoitpomsError(f"{doitpoms_id} is not a DoITPoMS micrograph id")
        if not refresh:
            rec = self.cache.get_record(doitpoms_id)
            if rec is not None:
                return rec
        what = f"micrograph {doitpoms_id}"
        try:
            html = self.fetch(record_path(doitpoms_id), what, max_age_s=0 if refresh else None)
        except NotFoundError:
            raise NotFoundError(f"micrograph {doitpoms_id} does not exist") from None
        rec = parse_full_record(html, doitpoms_id, url=self.url(micrograph_path(doitpoms_id)))
        if len(rec.errors) >= 5 and not rec.brief_descr:
            # Nothing usable: probably an error page served with status 200.
            rec.errors.setdefault("page", "no record fields found")
        self.cache.put_record(rec)
        return rec

    def large_image(self, doitpoms_id: int) -> bytes:
        """The full-size micrograph (JPEG bytes, verified decodable)."""
        doitpoms_id = int(doitpoms_id)
        what = f"image of micrograph {doitpoms_id}"
        try:
            return self.fetch_image(image_path(doitpoms_id, "large"), what)
        except NotFoundError:
            pass
        # The image may not follow the usual name: ask the micrograph page.
        try:
            page = self.fetch(micrograph_path(doitpoms_id), f"micrograph {doitpoms_id}")
        except NotFoundError:
            raise NotFoundError(f"micrograph {doitpoms_id} does not exist") from None
        src = parse_micrograph_page(page, doitpoms_id, self.url(micrograph_path(doitpoms_id)))["large"]
        rel = src[len(self.base_url):] if src.startswith(self.base_url) else ""
        if not rel or rel == image_path(doitpoms_id, "large"):
            raise NotFoundError(f"micrograph {doitpoms_id} has no large image")
        return self.fetch_image(rel, what)

    def thumbnail(self, doitpoms_id: int) -> bytes:
        """The small browse image (about 100 px wide)."""
        return self.fetch_image(image_path(doitpoms_id, "small"), f"thumbnail of micrograph {doitpoms_id}",
                                min_side=1)

    def list_micrographs(self, max_pages: int = 500, max_age_s: float | None = BROWSE_MAX_AGE_S) -> list[BrowseItem]:
        """Every micrograph linked from the browse pages (followed breadth-first)."""
        start = self.url(BROWSE_START)
        queue, seen = [start], {start}
        items: dict[int, BrowseItem] = {}
        while queue and len(seen) <= max_pages:
            page_url = queue.pop(0)
            rel = page_url[len(self.base_url):] if page_url.startswith(self.base_url) else None
            if rel is None:
                continue  # never wander off the library's site
            page = parse_browse_page(self.fetch(rel, "browse page", max_age_s=max_age_s), page_url)
            for it in page.items:
                old = items.get(it.id)
                if old is None or (not old.brief_descr and it.brief_descr):
                    items[it.id] = it
            for link in page.links:
                if link not in seen and link.startswith(self.base_url):
                    seen.add(link)
                    queue.append(link)
        out = sorted(items.values(), key=lambda i: i.id)
        self.cache.put_listed(out)
        self._listed_at = time.monotonic()
        return out

    def records(self, ids: Iterable[int], on_each: Callable[[int, Record | None, str | None], None] | None = None
                ) -> tuple[dict[int, Record], dict[int, str]]:
        """Records of ``ids``, fetched ``max_concurrent`` at a time; returns (records, errors)."""
        ids = list(dict.fromkeys(int(i) for i in ids))
        got: dict[int, Record] = {}
        errors: dict[int, str] = {}

        def one(i: int) -> None:
            try:
                got[i] = self.record(i)
                if on_each:
                    on_each(i, got[i], None)
            except MicrolibError as exc:
                errors[i] = str(exc)
                if on_each:
                    on_each(i, None, str(exc))

        with ThreadPoolExecutor(max_workers=self.max_concurrent) as pool:
            list(pool.map(one, ids))
        return got, errors

    def known_records(self) -> list[Record]:
        """Records in the index plus micrographs only seen on browse pages (caption only)."""
        recs = {r.id: r for r in self.cache.records()}
        for i, brief in self.cache.listed().items():
            if i not in recs:
                recs[i] = Record(id=i, brief_descr=brief, url=self.url(micrograph_path(i)),
                                 errors={"page": "full record not downloaded yet"})
        return [recs[i] for i in sorted(recs)]

    def search(self, text: str = "", category: str | None = None, technique: str | None = None,
               element: str | None = None, fetch: bool = True,
               on_progress: Callable[[int, int, str], None] | None = None) -> SearchResult:
        """Search record text with filters; fetches unseen records first when online.

        Offline (or when the server cannot be reached) the search runs over the
        records seen before and ``SearchResult.offline`` is True.
        """
        errors: dict[int, str] = {}
        message = ""
        if fetch and not self.offline:
            try:
                if time.monotonic() - self._listed_at > BROWSE_MAX_AGE_S:
                    self.list_micrographs()
                have = self.cache.record_ids()
                todo = [i for i in self.cache.listed() if i not in have]
                done = [0]

                def each(i, rec, err):
                    done[0] += 1
                    if on_progress:
                        on_progress(done[0], len(todo), f"record {i}")

                _, errors = self.records(todo, on_each=each)
            except DoitpomsError as exc:
                message = str(exc)
        recs = [r for r in self.known_records() if matches(r, text, category, technique, element)]
        return SearchResult(recs, offline=self.offline, errors=errors, message=message)


class _CutShort(Exception):
    """Internal: a body arrived incomplete; retried like a dropped connection."""


class _TooSlow(Exception):
    """Internal: the request's deadline passed."""


def resolve_deadline(deadline_s: float | None = None) -> float:
    """``deadline_s``, else ``$MICROLIB_DOITPOMS_DEADLINE``, else :data:`DEFAULT_DEADLINE_S` (seconds)."""
    if deadline_s is None:
        text = os.environ.get(ENV_DEADLINE, "").strip()
        try:
            deadline_s = float(text) if text else DEFAULT_DEADLINE_S
        except ValueError:
            raise DoitpomsError(f"${ENV_DEADLINE} must be a number of seconds (got {text!r})") from None
    if not 0 < deadline_s < float("inf"):
        raise DoitpomsError(f"the request deadline must be a positive number of seconds (got {deadline_s})")
    return float(deadline_s)


# -- the deadline ------------------------------------------------------------------
# A read timeout applies to each wait for data, not to the request: the watchdog of the
# request running in this thread shuts its connection's socket down at the deadline,
# which makes a read blocked anywhere (status line, headers, body) fail at once.
_current = threading.local()


def _shutdown(conn) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Watchdog:
    """Cuts the connections this thread uses for one request when ``deadline`` (monotonic) passes."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.fired = False
        self._conns: list = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> "_Watchdog":
        _current.dog = self
        self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        _current.dog = None
        with self._lock:
            self._conns.clear()

    def watch(self, conn) -> None:
        with self._lock:
            self._conns.append(conn)
            if self.fired:
                _shutdown(conn)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for conn in self._conns:
                _shutdown(conn)


class _Watched:
    """Mixin for urllib3 connections: each request registers with this thread's watchdog."""

    def connect(self):
        super().connect()
        dog = getattr(_current, "dog", None)
        if dog is not None and dog.fired:  # the deadline passed while connecting
            _shutdown(self)

    def request(self, *args, **kwargs):
        dog = getattr(_current, "dog", None)
        if dog is not None:
            dog.watch(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with connections the request watchdog can cut."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def _read_limited(resp: requests.Response, limit: int, what: str, deadline: float = float("inf")) -> bytes:
    buf = bytearray()
    for chunk in resp.iter_content(1 << 16):
        if time.monotonic() > deadline:
            raise _TooSlow()
        buf += chunk
        if len(buf) > limit:
            raise DoitpomsError(f"{what}: larger than {limit >> 20} MB; refused")
    if time.monotonic() >= deadline:  # cut by the watchdog: what came is not the page
        raise _TooSlow()
    return bytes(buf)


def _retry_after(value: str | None) -> float:
    """Seconds asked for by a Retry-After header (number form only), capped."""
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_S) if value else 0.0
    except ValueError:
        return 0.0


def _connection_reason(exc: BaseException) -> str:
    """A few words for why a connection failed (requests' own text is a paragraph)."""
    text = str(exc)
    for needles, reason in (
        (("NameResolution", "Failed to resolve", "Name or service not known", "getaddrinfo",
          "nodename nor servname"), "host name not found"),
        (("Connection refused", "ConnectionRefused"), "connection refused"),
        (("reset by peer", "ConnectionReset"), "connection reset"),
        (("RemoteDisconnected", "Connection aborted"), "connection closed by the server"),
        (("Network is unreachable", "No route to host"), "network unreachable"),
    ):
        if any(n in text for n in needles):
            return reason
    return _short(exc)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] if text else type(exc).__name__

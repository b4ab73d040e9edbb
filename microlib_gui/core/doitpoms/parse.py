"""Defensive parsing of DoITPoMS Micrograph Library pages.

Three kinds of page are read:

* browse pages (``browse.php...``): links to ``micrograph.php?id=N`` with a
  thumbnail ``micrographs/small/NNNNNN.jpg`` and a short caption;
* micrograph pages (``micrograph.php?id=N``): the large image and a caption;
* full records (``full_record.php?id=N``): the fields as definition-list pairs
  (``<dt>Brief description</dt><dd>...</dd>``) in the main column.

Pages are untrusted and vary: fields may be missing or reordered, carry odd
whitespace, HTML entities or bytes that are not UTF-8. Nothing here raises on
bad markup; each field that cannot be read is named in ``Record.errors``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, urljoin, urlparse

from bs4 import BeautifulSoup, CData, NavigableString, Tag

#: Record fields a full record page is expected to hold (label → attribute).
FIELD_LABELS: dict[str, str] = {
    "brief description": "brief_descr",
    "further information": "long_desc",
    "keywords": "keywords",
    "keyword": "keywords",
    "categories": "category",
    "category": "category",
    "composition": "composition",
    "technique": "technique",
    "contributor": "contributor",
    "organisation": "organisation",
    "organization": "organisation",
    "licence": "licence",
    "license": "licence",
    "terms of use": "licence",
}
REQUIRED_FIELDS = ("brief_descr", "keywords", "category", "composition", "technique")

# Chemical element symbols (Z = 1..103 cover every material in the library).
ELEMENTS: frozenset[str] = frozenset(
    """H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
    Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy
    Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf
    Es Fm Md No Lr""".split()
)
# Names sometimes written instead of symbols in the Composition field.
ELEMENT_NAMES: dict[str, str] = {
    "hydrogen": "H", "carbon": "C", "nitrogen": "N", "oxygen": "O", "sodium": "Na",
    "magnesium": "Mg", "aluminium": "Al", "aluminum": "Al", "silicon": "Si", "phosphorus": "P",
    "sulphur": "S", "sulfur": "S", "potassium": "K", "calcium": "Ca", "titanium": "Ti",
    "vanadium": "V", "chromium": "Cr", "manganese": "Mn", "iron": "Fe", "cobalt": "Co",
    "nickel": "Ni", "copper": "Cu", "zinc": "Zn", "gallium": "Ga", "germanium": "Ge",
    "zirconium": "Zr", "niobium": "Nb", "molybdenum": "Mo", "silver": "Ag", "cadmium": "Cd",
    "indium": "In", "tin": "Sn", "antimony": "Sb", "tungsten": "W", "platinum": "Pt",
    "gold": "Au", "lead": "Pb", "bismuth": "Bi", "uranium": "U", "yttrium": "Y", "boron": "B",
    "lithium": "Li", "barium": "Ba", "strontium": "Sr", "tantalum": "Ta", "hafnium": "Hf",
}
# A formula-like token: symbols each optionally followed by an amount ("Al2O3", "SiC", "Fe").
_FORMULA_RE = re.compile(r"^(?:[A-Z][a-z]?\d*(?:\.\d+)?)+$")
_SYMBOL_RE = re.compile(r"[A-Z][a-z]?")
_TOKEN_RE = re.compile(r"[A-Za-z0-9.]+")
# Symbols that are also English words: counted only inside a formula or before an amount.
_WORDLIKE = frozenset({"I", "In", "As", "At", "Be", "He", "No"})
_ID_RE = re.compile(r"(\d{1,7})")


def clean_text(text: str | None) -> str:
    """Collapse runs of whitespace (incl. non-breaking spaces) into single spaces."""
    return " ".join((text or "").replace("\xa0", " ").split())


def split_list(text: str) -> list[str]:
    """A comma (or semicolon) separated list → stripped, de-duplicated items in order."""
    out: list[str] = []
    for part in re.split(r"[,;]", text or ""):
        item = clean_text(part).strip(" .")
        if item and item.lower() not in (o.lower() for o in out):
            out.append(item)
    return out


def elements_from_composition(text: str) -> list[str]:
    """Element symbols named in a Composition field, in order of first mention.

    ``"Al 4 wt% Cu"`` → ``["Al", "Cu"]``; ``"Al2O3, SiC"`` → ``["Al", "O", "Si", "C"]``;
    ``"Copper, zinc"`` → ``["Cu", "Zn"]``; ordinary words ("Brass") give nothing.
    """
    found: list[str] = []
    for token in _TOKEN_RE.findall(text or ""):
        token = token.strip(".").lstrip("0123456789.")  # "6Al" in "Ti-6Al-4V"
        if not token:
            continue
        name = ELEMENT_NAMES.get(token.lower())
        if name:
            syms = [name]
        elif _FORMULA_RE.match(token):
            syms = _SYMBOL_RE.findall(token)
            if any(s not in ELEMENTS for s in syms) or (len(syms) == 1 and token in _WORDLIKE):
                continue
        else:
            continue
        for sym in syms:
            if sym not in found:
                found.append(sym)
    return found


@dataclass
class Record:
    """One DoITPoMS micrograph as read from its pages.

    ``errors`` maps a field name to a one-line reason it could not be read.
    """

    id: int
    brief_descr: str = ""
    long_desc: str = ""
    keywords: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    composition: str = ""
    element: list[str] = field(default_factory=list)
    technique: str = ""
    contributor: str = ""
    organisation: str = ""
    licence: str = ""
    url: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    def search_text(self) -> str:
        """Everything a text search looks at, lower-cased."""
        parts = [str(self.id), self.brief_descr, self.long_desc, " ".join(self.keywords),
                 " ".join(self.category), self.composition, " ".join(self.element), self.technique,
                 self.contributor, self.organisation]
        return " ".join(parts).lower()

    def library_metadata(self) -> dict[str, Any]:
        """The metadata stored with a library entry (MicroLib's field names)."""
        return {
            "brief_descr": self.brief_descr,
            "long_desc": self.long_desc,
            "keywords": list(self.keywords),
            "category": list(self.category),
            "element": list(self.element),
            "technique": self.technique,
            "contributor": self.contributor,
            "organisation": self.organisation,
            "licence": self.licence,
            "doitpoms_url": self.url,
        }


@dataclass
class BrowseItem:
    """A micrograph listed on a browse page."""

    id: int
    brief_descr: str = ""
    thumb: str = ""  # thumbnail URL as found (absolute)


@dataclass
class BrowsePage:
    items: list[BrowseItem]
    links: list[str]  # further browse pages (absolute URLs) found on this page


def _soup(html: bytes | str) -> BeautifulSoup:
    # Bytes go through BeautifulSoup's encoding detection (UnicodeDammit), so
    # Latin-1 or Windows-1252 pages decode instead of raising.
    return BeautifulSoup(html, "html.parser")


def _main_column(soup: BeautifulSoup):
    """The page's main column if it can be found, else the whole document."""
    for sel in ("#main", "#content", "main", ".main", "#maincontent", ".content"):
        node = soup.select_one(sel)
        if node is not None and node.find("dt") is not None:
            return node
    return soup


def _label_key(label: str) -> str | None:
    text = clean_text(label).lower().rstrip(":").strip()
    if text in FIELD_LABELS:
        return FIELD_LABELS[text]
    for known, key in FIELD_LABELS.items():
        if text.startswith(known):
            return key
    return None


def _inside(node, container) -> bool:
    parent = node.parent
    while parent is not None:
        if parent is container:
            return True
        parent = parent.parent
    return False


def _pairs(root) -> list[tuple[str, str | None]]:
    """(label, value text) pairs of the definition lists under ``root``.

    Walks the document in order instead of trusting the tree: with unclosed
    ``<dt>``/``<dd>`` tags the parser nests them inside each other, but the text
    still comes in label, value, label, value order. A value is the text inside
    its ``<dd>``; text after the list is not swallowed. Falls back to two-cell
    table rows when the page has no definition list.
    """
    pairs: list[tuple[str, str | None]] = []
    dt = dd = None
    label: list[str] = []
    value: list[str] | None = None

    def flush() -> None:
        if dt is not None:
            pairs.append((clean_text(" ".join(label)), None if value is None else clean_text(" ".join(value))))

    for node in root.descendants:
        if isinstance(node, Tag):
            if node.name == "dt":
                flush()
                dt, dd, label, value = node, None, [], None
            elif node.name == "dd" and dt is not None and dd is None:
                dd, value = node, []
            elif node.name == "br" and dd is not None and _inside(node, dd):
                value.append(" ")  # type: ignore[union-attr]
        elif isinstance(node, NavigableString) and type(node) in (NavigableString, CData):
            if node.parent is not None and node.parent.name in ("script", "style"):
                continue
            if dd is not None:
                if _inside(node, dd):
                    value.append(str(node))  # type: ignore[union-attr]
            elif dt is not None and _inside(node, dt):
                label.append(str(node))
    flush()
    if not pairs:
        for tr in root.find_all("tr"):
            cells = tr.find_all(["th", "td"], recursive=False)
            if len(cells) >= 2:
                pairs.append((_text_of(cells[0]), _text_of(cells[1])))
    return pairs


def _text_of(node) -> str:
    if node is None:
        return ""
    # <br> and block children become separators rather than glued words.
    return clean_text(node.get_text(" "))


def parse_full_record(html: bytes | str, doitpoms_id: int, url: str = "") -> Record:
    """Read a ``full_record.php`` page into a :class:`Record`; never raises on bad markup."""
    rec = Record(id=int(doitpoms_id), url=url)
    try:
        soup = _soup(html)
        root = _main_column(soup)
        pairs = _pairs(root)
    except Exception as exc:  # noqa: BLE001 - the HTML parser should not fail, but the page is untrusted
        rec.errors["page"] = f"cannot be parsed as HTML ({type(exc).__name__})"
        return rec
    seen: dict[str, Any] = {}
    for label, node in pairs:
        key = _label_key(label)
        if key and key not in seen:
            seen[key] = node
    handlers: dict[str, Callable[[Any], None]] = {
        "brief_descr": lambda t: setattr(rec, "brief_descr", t),
        "long_desc": lambda t: setattr(rec, "long_desc", t),
        "keywords": lambda t: setattr(rec, "keywords", split_list(t)),
        "category": lambda t: setattr(rec, "category", split_list(t)),
        "composition": _set_composition(rec),
        "technique": lambda t: setattr(rec, "technique", t),
        "contributor": lambda t: setattr(rec, "contributor", t),
        "organisation": lambda t: setattr(rec, "organisation", t),
        "licence": lambda t: setattr(rec, "licence", t),
    }
    for key, handler in handlers.items():
        if key not in seen:
            if key in REQUIRED_FIELDS:
                rec.errors[key] = "missing from the record page"
            continue
        if not seen[key]:
            rec.errors[key] = "label present but has no value"
            continue
        try:
            handler(seen[key])
        except Exception as exc:  # noqa: BLE001 - one bad field must not lose the others
            rec.errors[key] = f"cannot be read ({type(exc).__name__})"
    if not rec.licence:
        try:
            rec.licence = _find_licence(soup)
        except Exception:  # noqa: BLE001
            pass
    return rec


def _set_composition(rec: Record) -> Callable[[Any], None]:
    def handler(text: str) -> None:
        rec.composition = text
        rec.element = elements_from_composition(rec.composition)
    return handler


def _find_licence(soup: BeautifulSoup) -> str:
    """A licence or terms note anywhere on the page (text naming a licence or a CC link)."""
    for a in soup.find_all("a", href=True):
        if "creativecommons.org" in a["href"]:
            text = _text_of(a.parent) or _text_of(a)
            return text[:300]
    for node in soup.find_all(["p", "div", "span", "small"]):
        text = _text_of(node)
        low = text.lower()
        if ("licen" in low or "terms of use" in low or "copyright" in low) and len(text) < 400:
            return text
    return ""


def id_from_url(href: str) -> int | None:
    """The micrograph id of ``micrograph.php?id=N``/``full_record.php?id=N`` or an image name."""
    try:
        parsed = urlparse(href)
    except ValueError:
        return None
    q = parse_qs(parsed.query)
    if "id" in q:
        m = _ID_RE.fullmatch(q["id"][0].strip())
        return int(m.group(1)) if m else None
    m = re.search(r"micrographs/(?:small|large)/(\d+)\.\w+$", parsed.path)
    return int(m.group(1)) if m else None


def parse_browse_page(html: bytes | str, page_url: str) -> BrowsePage:
    """Micrographs and further browse pages linked from a browse page."""
    items: dict[int, BrowseItem] = {}
    links: list[str] = []
    try:
        soup = _soup(html)
    except Exception:  # noqa: BLE001
        return BrowsePage([], [])
    for a in soup.find_all("a", href=True):
        href = a["href"].strip()
        absolute = urljoin(page_url, href)
        path = urlparse(absolute).path
        if path.endswith("micrograph.php") or path.endswith("full_record.php"):
            mid = id_from_url(absolute)
            if mid is None:
                continue
            item = items.setdefault(mid, BrowseItem(mid))
            img = a.find("img")
            if img is not None and img.get("src") and not item.thumb:
                item.thumb = urljoin(page_url, img["src"].strip())
            caption = _text_of(a) or clean_text(img.get("alt") if img is not None else "") or clean_text(a.get("title"))
            if caption and not item.brief_descr:
                item.brief_descr = caption
        elif path.endswith("browse.php") and absolute not in links:
            links.append(absolute.split("#")[0])
    # A caption may sit beside the link rather than inside it (e.g. in the same cell).
    for mid, item in items.items():
        if not item.brief_descr:
            a = soup.find("a", href=re.compile(rf"id=0*{mid}\b"))
            if a is not None and a.parent is not None:
                item.brief_descr = _text_of(a.parent)[:200]
    return BrowsePage(sorted(items.values(), key=lambda i: i.id), links)


def parse_micrograph_page(html: bytes | str, doitpoms_id: int, page_url: str) -> dict[str, str]:
    """The large image URL and caption of a ``micrograph.php`` page (empty strings if absent)."""
    out = {"large": "", "caption": ""}
    try:
        soup = _soup(html)
        for img in soup.find_all("img", src=True):
            if "micrographs/large/" in img["src"]:
                out["large"] = urljoin(page_url, img["src"].strip())
                out["caption"] = clean_text(img.get("alt"))
                break
        if not out["caption"]:
            h = soup.find(["h1", "h2"])
            out["caption"] = _text_of(h)
    except Exception:  # noqa: BLE001
        pass
    return out

"""Client of the DoITPoMS Micrograph Library: HTTP, page parsing, cache, bulk import.

``client.Client`` fetches pages and images (through ``cache.Cache``),
``parse`` reads the pages, ``importer.import_micrographs`` adds a selection to a
library as a resumable job.
"""

from .cache import Cache, default_cache_root
from .client import (
    DEFAULT_BASE_URL,
    Client,
    DoitpomsError,
    NotFoundError,
    OfflineError,
    SearchResult,
    ServerError,
    resolve_base_url,
)
from .parse import Record, elements_from_composition, parse_full_record

__all__ = [
    "Cache", "Client", "DEFAULT_BASE_URL", "DoitpomsError", "NotFoundError", "OfflineError", "Record",
    "SearchResult", "ServerError", "default_cache_root", "elements_from_composition", "parse_full_record",
    "resolve_base_url",
]

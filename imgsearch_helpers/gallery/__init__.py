"""A gallery's collection kept in step with its folder: the engine behind the app, the HTTP API,
the command line and notebooks 1, 8 and 10 (`service.SearchService`), the registry of collections built
here (`collections`), and text search over a gallery (`text_search`)."""
from .collections import Registry, list_collections
from .service import Hit, Results, SearchService, SyncReport

__all__ = ["Hit", "Registry", "Results", "SearchService", "SyncReport", "list_collections"]

"""Reverse image search for people's own photos: the search service, the showcase app, the command line."""

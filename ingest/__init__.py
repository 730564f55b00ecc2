"""Reddit ingest: listings, post resolution, safe download and the curation pipeline.

The modules arrive with the ingest issue; the gallery core (``scenery``) does not depend on them.
"""

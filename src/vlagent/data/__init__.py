"""The data layer: annotations CSV, image sources (folder or zip) and query.json."""

from vlagent.data.annotations import Annotation, read_annotations
from vlagent.data.images import ImageSource, load_image, open_source
from vlagent.data.queries import QueryFile, QueryItem, QueryProblem, read_queries, write_queries

__all__ = [
    "Annotation",
    "ImageSource",
    "QueryFile",
    "QueryItem",
    "QueryProblem",
    "load_image",
    "open_source",
    "read_annotations",
    "read_queries",
    "write_queries",
]

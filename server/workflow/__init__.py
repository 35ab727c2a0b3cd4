"""Workflow files: a canvas's log as a portable JSON document (docs/workflow-format.md).

The package by step: `format` (constants, `Workflow`, parsing and validation), `load` (JSON, PNG or an original
Opendream file), `opendream` (converting the original's files), `png` (embedding in and extracting from PNGs),
`export` and `imports`.

Export writes the events up to a version, the images that cannot be regenerated (uploads, painted masks) and,
unless asked not to, the rendered images, plus the models the renders used. Import validates everything
first — format, version, every event, operation and parameter, the DAG, every blob's hash and image — and
only then creates a canvas; a bad file is rejected whole with a message naming what is wrong.
"""

from server.workflow.export import export_workflow
from server.workflow.format import (
    FORMAT,
    FORMAT_VERSION,
    PNG_KEY,
    InvalidWorkflow,
    Workflow,
    parse_workflow,
    referenced_blobs,
)
from server.workflow.imports import events_to_import, import_workflow
from server.workflow.load import load_document
from server.workflow.png import embed_in_png, extract_from_png

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PNG_KEY",
    "InvalidWorkflow",
    "Workflow",
    "embed_in_png",
    "events_to_import",
    "export_workflow",
    "extract_from_png",
    "import_workflow",
    "load_document",
    "parse_workflow",
    "referenced_blobs",
]

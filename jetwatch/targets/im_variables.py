"""How a batch's file list reaches an Integration Manager job run: job variables from a template.

Seed 003 shows ``POST /api/jobconfigs/{id}/jobs`` without a body and does not say how a run
learns which files to process. jetwatch's choice: the POST body is ``{"variables": {...}}``
(the key is configurable), one string per variable, and a template maps each variable name
to a :class:`VariableSource`. The default template::

    JETWATCH_FILES      = "files_lines"   absolute paths, one per line
    JETWATCH_FILE_COUNT = "count"         number of files, e.g. "3"
    JETWATCH_BATCH      = "batch"         deterministic token of the batch's content

The integration package reads these variables (DataConnect macros/variables) to find its
input. ``batch`` lets jetwatch recognise its own run after a crash (see ``find_submission``);
a template must carry ``batch`` or a file list. Names holding a newline need ``files_json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from types import MappingProxyType

from jetwatch.targets.base import SubmitObject, batch_token


class VariableSource(StrEnum):
    """What one job variable carries."""

    FILES_JSON = "files_json"  # JSON array of absolute local paths
    FILES_LINES = "files_lines"  # absolute local paths joined by newlines
    RELPATHS_JSON = "relpaths_json"  # JSON array of paths relative to the watched folder
    RELPATHS_LINES = "relpaths_lines"  # relative paths joined by newlines
    COUNT = "count"  # number of files
    TOTAL_BYTES = "total_bytes"  # sum of the files' sizes
    BATCH = "batch"  # batch_token(): same files, same token


# Sources that tell one batch from another; a template needs one so that in-doubt resolution
# cannot adopt a run of other files (count and total_bytes alone would).
IDENTIFYING_SOURCES = frozenset(
    {
        VariableSource.BATCH,
        VariableSource.FILES_JSON,
        VariableSource.FILES_LINES,
        VariableSource.RELPATHS_JSON,
        VariableSource.RELPATHS_LINES,
    }
)

DEFAULT_VARIABLES: Mapping[str, VariableSource] = MappingProxyType(
    {
        "JETWATCH_FILES": VariableSource.FILES_LINES,
        "JETWATCH_FILE_COUNT": VariableSource.COUNT,
        "JETWATCH_BATCH": VariableSource.BATCH,
    }
)


def _value(source: VariableSource, objects: Sequence[SubmitObject]) -> str:
    if source is VariableSource.FILES_JSON:
        return json.dumps([str(o.local_path) for o in objects], ensure_ascii=False)
    if source is VariableSource.FILES_LINES:
        return "\n".join(str(o.local_path) for o in objects)
    if source is VariableSource.RELPATHS_JSON:
        return json.dumps([o.relpath for o in objects], ensure_ascii=False)
    if source is VariableSource.RELPATHS_LINES:
        return "\n".join(o.relpath for o in objects)
    if source is VariableSource.COUNT:
        return str(len(objects))
    if source is VariableSource.TOTAL_BYTES:
        return str(sum(o.size for o in objects))
    return batch_token(objects)


def template_problem(template: Mapping[str, VariableSource]) -> str:
    """Why a template cannot be used ("" when it can)."""
    if not template:
        return "name at least one variable"
    if not all(name.strip() for name in template):
        return "variable names must not be empty"
    if not IDENTIFYING_SOURCES & {VariableSource(s) for s in template.values()}:
        return "one variable must carry batch or a file list (files_* or relpaths_*)"
    return ""


def render_variables(
    template: Mapping[str, VariableSource], objects: Sequence[SubmitObject]
) -> dict[str, str]:
    """Pure: the job variables of one batch; the same files always give the same values."""
    return {name: _value(VariableSource(source), objects) for name, source in template.items()}


def parse_file_list(value: str) -> list[str]:
    """Paths from a ``files_json`` or ``files_lines`` value (a JSON array, else one per line)."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return [i for i in items if i]
    return [line for line in value.splitlines() if line.strip()]

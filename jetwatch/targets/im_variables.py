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

from jetwatch.config.targets import VariableSource
from jetwatch.domain.target import SubmitObject, batch_token


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


def render_variables(
    template: Mapping[str, VariableSource], objects: Sequence[SubmitObject]
) -> dict[str, str]:
    """Pure: the job variables of one batch; the same files always give the same values."""
    return {name: _value(VariableSource(source), objects) for name, source in template.items()}

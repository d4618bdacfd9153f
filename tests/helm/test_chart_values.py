"""The chart's values, read as a specification: what an operator may set, what is refused, and how.

Helm enforces values.schema.json on every render; cross-value checks fail the
render from the templates. Either way the message names the value to fix.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import pytest

from tests.helm.chart_render import CHART_DIR, EXAMPLES, NAMESPACE, RELEASE, load_values


def test_values_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())

    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("values_file", [None, *EXAMPLES], ids=lambda p: p.stem if p else "defaults")
def test_defaults_and_examples_satisfy_the_schema_as_python_jsonschema_reads_it(
    chart: helm_python.Chart, values_file: Path | None
) -> None:
    # Helm enforces the schema itself on render; this cross-checks it with an independent validator.
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    merged = chart.merge_values(load_values(values_file) if values_file else {})

    jsonschema.Draft202012Validator(schema).validate(merged)


# --- values that must be refused ----------------------------------------------------------

REJECTED: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    (
        "unknown device family",
        {"pools": [{"name": "x", "family": "tpu"}]},
        helm_python.HelmValuesError,
        "at '/pools/0/family': value must be one of 'cpu', 'cuda', 'npu', 'dcu', 'mlu', 'kunlunxin'",
    ),
    (
        "negative replicas",
        {"pools": [{"name": "x", "family": "cpu", "replicas": -1}]},
        helm_python.HelmValuesError,
        "at '/pools/0/replicas': minimum: got -1, want 0",
    ),
    (
        "unknown pool field",
        {"pools": [{"name": "x", "family": "cuda", "gpus": 2}]},
        helm_python.HelmValuesError,
        "at '/pools/0': additional properties 'gpus' not allowed",
    ),
    (
        "wrong type",
        {"pools": [{"name": "x", "family": "cuda", "devicesPerPod": "eight"}]},
        helm_python.HelmValuesError,
        "at '/pools/0/devicesPerPod': got string, want integer",
    ),
    (
        "missing S3 secret",
        {"storage": {"s3": {"existingSecret": ""}}},
        helm_python.HelmValuesError,
        "at '/storage/s3/existingSecret': minLength: got 0, want 1",
    ),
    (
        "password inside the Redis URL",
        {"redis": {"enabled": False}, "externalRedis": {"url": "redis://:hunter2@redis:6379/0"}},
        helm_python.HelmValuesError,
        "at '/externalRedis/url'",
    ),
    (
        "external Redis without a URL",
        {"redis": {"enabled": False}},
        helm_python.HelmValuesError,
        "at '/externalRedis/url': minLength: got 0, want 1",
    ),
    (
        "AOF without fsync",
        {"redis": {"appendfsync": "no"}},
        helm_python.HelmValuesError,
        "at '/redis/appendfsync'",
    ),
    (
        "file storage without a shared volume",
        {"storage": {"url": "file:///srv/voxfarm/farm"}},
        helm_python.HelmValuesError,
        "at '/storage/sharedVolume/enabled': value must be true",
    ),
    (
        "unknown top-level key",
        {"pool": [{"name": "x", "family": "cpu"}]},
        helm_python.HelmValuesError,
        "additional properties 'pool' not allowed",
    ),
    (
        "bucket no producer fills",
        {"pools": [{"name": "x", "family": "cpu", "buckets": [100]}]},
        helm_python.HelmRenderError,
        "pools[x].buckets: 100 is not one of farm.bucketEdges",
    ),
    (
        "duplicate pool names",
        {"pools": [{"name": "x", "family": "cpu"}, {"name": "x", "family": "cuda"}]},
        helm_python.HelmRenderError,
        'pools: the name "x" is used twice',
    ),
    (
        "grace period shorter than a batch",
        {"pools": [{"name": "x", "family": "cpu", "terminationGracePeriodSeconds": 200}]},
        helm_python.HelmRenderError,
        "pools[x].terminationGracePeriodSeconds: 200 must exceed farm.batchTimeLimitSeconds (300)",
    ),
]


@pytest.mark.parametrize(("values", "error", "message"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_invalid_values_are_refused_with_a_message_naming_the_value(
    chart: helm_python.Chart, values: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)

    assert message in str(refused.value)


@pytest.mark.parametrize(
    "values", [r[1] for r in REJECTED if r[2] is helm_python.HelmValuesError], ids=lambda v: json.dumps(v)[:40]
)
def test_schema_refusals_agree_with_an_independent_validator(chart: helm_python.Chart, values: dict[str, Any]) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(chart.merge_values(values))


# --- values.yaml documents itself -------------------------------------------------------


def test_every_value_in_values_yaml_is_documented() -> None:
    """Each value has a "# --" comment above it, or sits under a key that has one."""
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    undocumented: list[str] = []
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    comment = False
    list_indent: int | None = None
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            comment = False
            continue
        if stripped.startswith("#"):
            comment = comment or stripped.startswith("# --")
            continue
        if list_indent is not None and indent >= list_indent and (indent > list_indent or stripped.startswith("- ")):
            continue  # an item of a documented block list
        list_indent = None
        key = re.match(r"^([\w./-]+):\s*(.*)$", stripped)
        assert key, f"values.yaml:{number}: unexpected line {stripped!r}"
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = comment or any(doc for _, doc in stack)
        value = key.group(2)
        following = next((n.strip() for n in lines[number:] if n.strip() and not n.strip().startswith("#")), "")
        is_block_list = not value and following.startswith("- ")
        if (value or is_block_list) and not documented:
            undocumented.append(f"values.yaml:{number}: {key.group(1)}")
        if is_block_list:
            list_indent = indent
        stack.append((indent, documented))
        comment = False

    assert undocumented == []

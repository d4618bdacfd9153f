"""Fixtures of the chart tests: the chart, loaded once, and its renders for the defaults and every example."""

from __future__ import annotations

from collections.abc import Iterator

import helm_python
import pytest

from tests.helm.chart_render import CHART_DIR, EXAMPLES, Rendered, load_values, render


@pytest.fixture(scope="session")
def chart() -> Iterator[helm_python.Chart]:
    loaded = helm_python.Chart.load(CHART_DIR)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def rendered(chart: helm_python.Chart) -> dict[str, Rendered]:
    """The chart rendered once per session: with its defaults and with every example values file."""
    renders = {"defaults": render(chart, {})}
    for path in EXAMPLES:
        renders[path.stem] = render(chart, load_values(path))
    return renders


@pytest.fixture(scope="session")
def hybrid(rendered: dict[str, Rendered]) -> Rendered:
    return rendered["hybrid-ascend-gpu"]

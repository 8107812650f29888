"""Fixtures shared by several test modules (pytest finds them here, no import needed).

Helpers that build data (``fixtures_data.tiny_site``, ``fixtures_figures.build``) stay plain
functions in their modules; the fixtures below wrap the ones that are expensive to build.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> dict[str, Any]:
    """A tiny results tree (simulated site, trained chunks of every kind of model, merged
    predictions, metrics, and the inputs/params the workflow passes to the figures), built
    once per session and shared by the analysis, plot, claims and ground-truth tests."""
    from fixtures_figures import build  # xarray and torch only when a test needs the tree

    return build(tmp_path_factory.mktemp("figtree"))

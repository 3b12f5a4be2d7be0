"""The documentation covers the public API, and its pages' examples run.

Pure Python, no Sphinx: the rules live in ``docs/_ext/softtorch_docs.py``, which the Sphinx build
also loads (there it checks the rendered objects and warns, so ``sphinx-build -W`` fails too).
"""

from __future__ import annotations

import doctest
import importlib.util
import py_compile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
GENERATED = ("_build", "auto_tutorials", "gen_modules")


def _rules():
    spec = importlib.util.spec_from_file_location("softtorch_docs", DOCS / "_ext" / "softtorch_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages():
    return sorted(p for p in DOCS.rglob("*.rst") if not any(part in GENERATED for part in p.relative_to(DOCS).parts))


def test_every_public_name_is_on_its_api_page():
    problems = _rules().coverage_problems(API)
    assert problems == [], "the API pages disagree with __all__:\n" + "\n".join(problems)


def test_every_family_has_a_page():
    rules = _rules()
    for stem in (*rules.FAMILIES, rules.BASE_PAGE, "index"):
        assert (API / f"{stem}.rst").is_file(), f"docs/api/{stem}.rst is missing"


def test_listed_names_reads_directives():
    text = """
.. currentmodule:: softtorch

.. autosummary::
   :nosignatures:

   sort
   ~softtorch.rank

.. autofunction:: topk
.. autoclass:: softtorch.nn.SoftSort
   :members:

.. currentmodule:: softtorch.nn

.. autosummary::
   :toctree: generated

   SoftRank

.. autoclass:: SoftTopK
.. code-block:: python

   not_a_name
"""
    assert _rules().listed_names(text) == [
        ("softtorch.sort", "autosummary"),
        ("softtorch.rank", "autosummary"),
        ("softtorch.topk", "autofunction"),
        ("softtorch.nn.SoftSort", "autoclass"),
        ("softtorch.nn.SoftRank", "autosummary:toctree"),
        ("softtorch.nn.SoftTopK", "autoclass"),
    ]


def _api_copy(tmp_path, edit):
    for page in API.glob("*.rst"):
        (tmp_path / page.name).write_text(edit(page.stem, page.read_text(encoding="utf-8")), encoding="utf-8")
    return tmp_path


def test_a_missing_name_is_reported(tmp_path):
    def drop_rank(stem, text):
        return text.replace(".. autofunction:: rank\n", "").replace("   rank\n", "") if stem == "sorting" else text

    problems = _rules().coverage_problems(_api_copy(tmp_path, drop_rank))
    assert problems == ["softtorch.rank is public but documented on no API page; add it to docs/api/sorting.rst"]


def test_a_table_row_without_its_entry_is_reported(tmp_path):
    def drop_rank_entry(stem, text):
        return text.replace(".. autofunction:: rank\n", "") if stem == "sorting" else text

    problems = _rules().coverage_problems(_api_copy(tmp_path, drop_rank_entry))
    assert problems == [
        "softtorch.rank is in an autosummary table of docs/api/sorting.rst but not documented there",
        "softtorch.rank is public but documented on no API page; add it to docs/api/sorting.rst",
    ]


def test_a_misplaced_name_is_reported(tmp_path):
    def move_rank(stem, text):
        if stem == "sorting":
            return text.replace(".. autofunction:: rank\n", "").replace("   rank\n", "")
        if stem == "reduction":
            return text.replace(".. autofunction:: max\n", ".. autofunction:: max\n.. autofunction:: rank\n")
        return text

    problems = _rules().coverage_problems(_api_copy(tmp_path, move_rank))
    assert problems == ["softtorch.rank is documented on ['reduction'] but belongs on docs/api/sorting.rst"]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples_run(page):
    """The ``>>>`` examples of every hand-written page print what the page says."""
    failures, _ = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        encoding="utf-8",
        verbose=False,
    )
    assert failures == 0, f"{failures} example(s) of {page.relative_to(ROOT)} failed (doctest output above)"


@pytest.mark.parametrize("script", sorted((ROOT / "tutorials").glob("plot_*.py")), ids=lambda p: p.name)
def test_tutorial_compiles_and_makes_a_figure(script):
    py_compile.compile(str(script), doraise=True)
    text = script.read_text(encoding="utf-8")
    assert "matplotlib" in text and "torch.manual_seed" in text, f"{script.name} needs a figure and a fixed seed"

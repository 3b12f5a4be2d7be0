"""The built documentation is self-contained: MathJax ships with the site, no script is remote.

The configuration test always runs; the built-site tests run on ``docs/_build/html`` when it
exists (``tox -e docs`` builds it and then runs this file) and skip otherwise.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
_SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


def _pages():
    if not (SITE / "index.html").is_file():
        pytest.skip("docs/_build/html is not built (run: sphinx-build -W -b html docs docs/_build/html)")
    return sorted(SITE.rglob("*.html"))


def test_remote_pattern():
    for remote in ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", "//cdn.x/y.js", "http://a/b"):
        assert _REMOTE.match(remote)
    for local in ("_static/mathjax/tex-chtml.js", "../_static/doctools.js", "searchindex.js"):
        assert not _REMOTE.match(local)
    page = '<script defer="defer" src="https://cdn.example/m.js"></script><script src="_static/a.js">'
    assert _SCRIPT_SRC.findall(page) == ["https://cdn.example/m.js", "_static/a.js"]


def test_conf_uses_the_packaged_mathjax():
    conf = (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")
    assert '"sphinx-mathjax-offline"' in conf
    assert "sphinx-mathjax-offline" in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if importlib.util.find_spec("sphinx-mathjax-offline") is None:
        pytest.skip("sphinx-mathjax-offline is not installed (pip install -e '.[docs]')")
    package = Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent
    assert (package / "static" / "mathjax" / "tex-chtml.js").is_file()


def test_built_site_references_no_remote_script():
    remote = []
    for page in _pages():
        for src in _SCRIPT_SRC.findall(page.read_text(encoding="utf-8", errors="replace")):
            if _REMOTE.match(src):
                remote.append(f"{page.relative_to(SITE)}: {src}")
    assert remote == [], "remote scripts in the built docs:\n" + "\n".join(remote[:20])


def test_built_site_ships_mathjax_and_math_pages_load_it():
    pages = _pages()
    assert (SITE / "_static" / "mathjax" / "tex-chtml.js").is_file()
    sorting = SITE / "api" / "sorting.html"
    text = sorting.read_text(encoding="utf-8")
    assert "_static/mathjax/tex-chtml.js" in text
    assert text.count('class="math') >= 10  # the formulas MathJax typesets
    with_math = [p for p in pages if 'class="math' in p.read_text(encoding="utf-8", errors="replace")]
    assert len(with_math) >= 15
    for page in with_math:
        assert "mathjax/tex-chtml.js" in page.read_text(encoding="utf-8", errors="replace"), page

"""Local Sphinx extension of the softtorch docs, and the API-coverage rules it shares with the tests.

* :func:`expected_pages` says on which API page every public name belongs: a name of
  ``softtorch.__all__`` or ``softtorch.nn.__all__`` defined in ``softtorch/functional/<family>.py``
  or ``softtorch/nn/<family>.py`` goes on ``docs/api/<family>.rst``; ``softtorch.st`` and
  ``softtorch.nn.SoftModule`` go on ``docs/api/base.rst``; the ``__all__`` of a public submodule
  (:data:`SUBMODULES`, e.g. ``softtorch.schedules``) goes on ``docs/api/<submodule>.rst``.
* :func:`listed_names` reads the names an ``.rst`` file puts in ``autosummary``, ``autofunction``,
  ``autoclass`` (and the other ``auto*``) directives, resolved against ``currentmodule``.
* :func:`coverage_problems` compares the two (a name must be rendered by an ``auto*`` directive
  on its page; a plain ``autosummary`` table row only links to it);
  ``tests/test_docs_coverage.py`` runs it without Sphinx.
* In a Sphinx build, :func:`setup` checks (at ``env-check-consistency``) that every public name
  was really rendered as an object on its page, and warns otherwise, so ``-W`` fails the build.

This module imports nothing from Sphinx at import time.
"""

from __future__ import annotations

import re
from pathlib import Path

#: The family pages; each is both ``softtorch/functional/<stem>.py`` and ``docs/api/<stem>.rst``.
FAMILIES = ("elementwise", "comparison", "logic", "selection", "reduction", "sorting", "losses")
#: Page of the names that belong to no family (``softtorch.st``, ``softtorch.nn.SoftModule``).
BASE_PAGE = "base"
#: Public submodules outside the two namespaces, each on ``docs/api/<stem>.rst`` with its ``__all__``.
SUBMODULES = ("schedules",)

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\.\s+(?P<name>[\w:]+)::\s*(?P<arg>.*?)\s*$")
_AUTO_DIRECTIVES = {
    "autofunction",
    "autoclass",
    "autodata",
    "autoattribute",
    "automethod",
    "autoexception",
    "autosummary",
    "py:function",
    "py:class",
}


def public_names() -> dict[str, object]:
    """``{"softtorch.sort": obj, ..., "softtorch.nn.SoftSort": obj, ...}`` from the two ``__all__``,
    and the ``__all__`` of every ``softtorch.compat`` submodule (``softtorch.compat.torchsort.soft_sort``)."""
    import importlib
    import pkgutil

    import softtorch
    import softtorch.compat
    import softtorch.nn

    names = {f"softtorch.{n}": getattr(softtorch, n) for n in softtorch.__all__}
    names.update({f"softtorch.nn.{n}": getattr(softtorch.nn, n) for n in softtorch.nn.__all__})
    for stem in SUBMODULES:
        module = getattr(softtorch, stem)
        names.update({f"softtorch.{stem}.{n}": getattr(module, n) for n in module.__all__})
    for info in pkgutil.iter_modules(softtorch.compat.__path__):
        module = importlib.import_module(f"softtorch.compat.{info.name}")
        names.update({f"{module.__name__}.{n}": getattr(module, n) for n in module.__all__})
    return names


def page_of(obj) -> str:
    """The API page stem where ``obj`` belongs, from the module that defines it (a compat shim
    ``softtorch.compat.X`` on ``compat_X``)."""
    module = getattr(obj, "__module__", "") or ""
    stem = module.rsplit(".", 1)[-1]
    if module.startswith(("softtorch.functional.", "softtorch.nn.")) and stem in FAMILIES:
        return stem
    if module in (f"softtorch.{s}" for s in SUBMODULES):
        return stem
    if module.startswith("softtorch.compat."):
        return f"compat_{stem}"
    return BASE_PAGE


def expected_pages() -> dict[str, str]:
    """``{qualified public name: API page stem}``."""
    return {name: page_of(obj) for name, obj in public_names().items()}


def listed_names(text: str) -> list[tuple[str, str]]:
    """``(qualified name, directive)`` for every name an ``.rst`` source puts in an ``auto*`` directive.

    An ``autosummary`` with a ``:toctree:`` option generates the object's page, so its names are
    reported as ``"autosummary:toctree"``; a plain table as ``"autosummary"``.
    """
    current = None
    found: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        i += 1
        if not match:
            continue
        directive, arg = match.group("name"), match.group("arg")
        if directive in ("currentmodule", "module", "py:currentmodule", "py:module", "automodule"):
            current = arg or None
            continue
        if directive not in _AUTO_DIRECTIVES:
            continue
        targets = [arg] if arg else []
        if directive == "autosummary":
            # The names are the indented body lines that are not options.
            indent = len(match.group("indent"))
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body = lines[i].strip()
                if body.startswith(":toctree:"):
                    directive = "autosummary:toctree"
                elif body and not body.startswith(":"):
                    targets.append(body.split()[0])
                i += 1
        for target in targets:
            target = target.split("(")[0].strip().lstrip("~")
            if not target:
                continue
            if current and not target.startswith(current + ".") and not target.startswith("softtorch"):
                target = f"{current}.{target}"
            found.append((target, directive))
    return found


def documented_in_api(api_dir: Path) -> tuple[dict[str, set[str]], list[str]]:
    """``{qualified name: {page stems documenting it}}`` over ``api_dir/*.rst``, and dead table rows.

    A name counts as documented when an ``auto*`` directive (or an ``autosummary`` with
    ``:toctree:``) renders it; a row of a plain ``autosummary`` table whose object is not
    documented on the same page would be a dead link and is reported.
    """
    documented: dict[str, set[str]] = {}
    dead: list[str] = []
    for path in sorted(Path(api_dir).glob("*.rst")):
        entries = listed_names(path.read_text(encoding="utf-8"))
        rendered = {name for name, directive in entries if directive != "autosummary"}
        for name in rendered:
            documented.setdefault(name, set()).add(path.stem)
        for name, directive in entries:
            if directive == "autosummary" and name not in rendered:
                dead.append(f"{name} is in an autosummary table of docs/api/{path.stem}.rst but not documented there")
    return documented, dead


def coverage_problems(api_dir: Path) -> list[str]:
    """Every way the API pages disagree with ``__all__``: missing, misplaced, stale or dead names."""
    expected = expected_pages()
    documented, problems = documented_in_api(api_dir)
    for name, page in expected.items():
        pages = documented.get(name, set())
        if not pages:
            problems.append(f"{name} is public but documented on no API page; add it to docs/api/{page}.rst")
        elif page not in pages:
            problems.append(f"{name} is documented on {sorted(pages)} but belongs on docs/api/{page}.rst")
    for name in sorted(set(documented) - set(expected)):
        problems.append(f"{name} is documented on docs/api/{sorted(documented[name])[0]}.rst but is not in __all__")
    return problems


# -- Sphinx side ---------------------------------------------------------------------------------


def _check_rendered(app, env) -> None:
    """Warn for every public name that the build did not render as an object on its API page."""
    from sphinx.util import logging

    logger = logging.getLogger("softtorch_docs")
    objects = env.get_domain("py").objects
    for name, page in expected_pages().items():
        docname = f"api/{page}"
        entry = objects.get(name)
        if entry is None:
            logger.warning(
                "API coverage: %s (in __all__) is not documented; add it to docs/api/%s.rst",
                name,
                page,
                location=docname,
                type="softtorch",
                subtype="coverage",
            )
        elif entry.docname != docname:
            logger.warning(
                "API coverage: %s is documented on %s but belongs on %s",
                name,
                entry.docname,
                docname,
                location=docname,
                type="softtorch",
                subtype="coverage",
            )


def _drop_self(app, what, name, obj, options, signature, return_annotation):
    """Layer signatures come from ``SoftModule.__signature__``, which lists ``self``: hide it."""
    if what == "class" and signature and signature.startswith("(self"):
        signature = "(" + signature[len("(self") :].lstrip(", ")
    return signature, return_annotation


#: The order of the tutorials in the gallery (others follow, by file name).
TUTORIAL_ORDER = (
    "plot_modes_and_softness.py",
    "plot_sorting_methods.py",
    "plot_learnable_softness.py",
    "plot_learning_to_rank_items.py",
    "plot_straight_through.py",
    "plot_spearman_ranking.py",
    "plot_topk_classification.py",
    "plot_learning_to_rank_losses.py",
)


class TutorialOrder:
    """sphinx-gallery ``within_subsection_order`` key: :data:`TUTORIAL_ORDER`, then by name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = Path(filename).name
        rank = TUTORIAL_ORDER.index(name) if name in TUTORIAL_ORDER else len(TUTORIAL_ORDER)
        return (rank, name)

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _public_bases(app, name, obj, options, bases):
    """Show softtorch base classes under their public names (``softtorch.nn.SoftModule``).

    Private intermediate classes (such as the comparison layers' shared base) are replaced by
    their first public ancestor.
    """
    public = {id(o): n for n, o in public_names().items()}
    for i, base in enumerate(bases):
        if not getattr(base, "__module__", "").startswith("softtorch"):
            continue
        for ancestor in getattr(base, "__mro__", ()):
            if id(ancestor) in public:
                bases[i] = f":class:`{public[id(ancestor)]}`"
                break


def reset_seeds(gallery_conf, fname):
    """sphinx-gallery ``reset_modules`` hook: the same state before every tutorial.

    The tutorials train tiny models, for which one CPU thread is fastest: on a small, busy machine
    the thread pool's synchronization costs more than the arithmetic.
    """
    import numpy as np
    import torch

    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)


def setup(app):
    app.connect("env-check-consistency", _check_rendered)
    app.connect("autodoc-process-signature", _drop_self)
    app.connect("autodoc-process-bases", _public_bases)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

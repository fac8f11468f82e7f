"""Sphinx configuration of the ptyframe manual (``make docs``).

The build is offline (no intersphinx), treats warnings as errors (``-W`` in the Makefile),
runs the worked examples of ``docs/examples/`` (sphinx-gallery) and generates the
configuration reference from the component registry (``_ext/configref.py``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))

import ptyframe  # noqa: E402

# sphinx-autodoc-typehints calls an API that Sphinx 9 deprecates (a Python warning, printed
# once per docstring; not a warning of the build)
warnings.filterwarnings("ignore", message=".*set_application.*")

project = "ptyframe"
author = "the ptyframe developers"
copyright = "the ptyframe developers"
version = release = ptyframe.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx_autodoc_typehints",
    "sphinx_gallery.gen_gallery",
    "configref",
    "plaindocstrings",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "examples/README.rst", "**/GALLERY_HEADER.rst"]
templates_path = ["_templates"]
html_static_path = ["_static"]

html_theme = "furo"
html_title = f"ptyframe {release}"
html_logo = None
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
html_last_updated_fmt = None

myst_enable_extensions = ["colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3

# API reference: autodoc with the type hints in the signature's description
autodoc_default_options = {"members": True, "show-inheritance": False, "undoc-members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["mpi4py", "lightning", "pytorch_lightning"]
always_document_param_types = False
typehints_fully_qualified = False
autosummary_generate = True

# nitpicky for what the project defines; outside libraries are not cross-referenced (no
# intersphinx: the build is offline)
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|h5py|omegaconf|hydra|scipy|matplotlib|pluggy|optuna)(\..*)?"),
    (r"py:.*", r"(typing|collections|pathlib|dataclasses|argparse|logging|types|enum)\..*"),
    (r"py:.*", r"(Tensor|ndarray|DictConfig|Path|Any|Callable|Iterator|Iterable|Sequence)"),
    (r"py:.*", r"(Mapping|Generator|ArrayLike|NDArray|dtype|device|Module|Parameter)"),
    (r"py:.*", r"(np|torch|h5py)\..*"),
    (r"py:class", r"[A-Za-z_]+\.[A-Za-z_.]+"),  # names the docstrings give in full
    (r"py:class", r"(optional|default|callable|file|path|number)"),
    (r"py:data", r"Ellipsis"),
]

sphinx_gallery_conf = {
    "examples_dirs": str(DOCS / "examples"),
    "gallery_dirs": str(DOCS / "auto_examples"),
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "show_signature": False,
    "plot_gallery": "True",
    "min_reported_time": 10**9,
}

# the builtin ``object`` in a type hint also names attributes called ``object``
suppress_warnings = ["config.cache", "ref.python"]

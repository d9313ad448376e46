"""Sphinx settings for the book as a static website (``make site``; ``tools/site.py`` builds it).

The pages are the notebooks with their saved outputs (``nb_execution_mode = "off"``: nothing is
executed, so the site shows exactly what nbval checked) and the README as the front page, with its
map of notebooks. Widgets are rendered from the widget state saved in each notebook where the
browser can load the widget library; every panel also has a static table under it.
"""

project = "chatdesign"
author = "the chatdesign authors"
copyright = "the chatdesign authors"
extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
html_theme = "furo"
html_title = "chatdesign: a system-design textbook that runs"
html_static_path: list[str] = []
suppress_warnings = ["mystnb.unknown_mime_type"]

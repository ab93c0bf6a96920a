"""mkdocs hooks: README.md is the site's home page, and links out of docs/ go to GitHub.

The same Markdown reads well in three places: on GitHub, on PyPI (the README) and on the
site. On GitHub a relative link such as ``../examples/triage`` or ``docs/graders.md``
works; on the site a file outside ``docs/`` does not exist, and ``mkdocs build --strict``
fails on such a link. So the site's build, and only it, rewrites them: a link from the
README into ``docs/`` becomes a link between pages, and a link to any other file of the
repository becomes its address on GitHub. Nothing is fetched.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPOSITORY = "https://github.com/pytest-modelopt/pytest-modelopt"
ROOT = Path(__file__).resolve().parents[1]
# [text](target) and [text](target#anchor); not images' absolute URLs, not anchors alone
_LINK = re.compile(r"(?P<open>\]\()(?P<target>[^)\s#]+)(?P<anchor>#[^)\s]*)?(?P<close>\))")


def on_files(files: Files, config: Any) -> Files:
    """The README, rendered as ``index.md``."""
    files.append(File.generated(config, "index.md", abs_src_path=str(ROOT / "README.md")))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    # where the page's source lives in the repository ("README.md" or "docs/x.md")
    source = "README.md" if page.file.src_uri == "index.md" else f"docs/{page.file.src_uri}"
    return _LINK.sub(lambda m: _rewrite(m, source), markdown)


def _rewrite(match: re.Match[str], source: str) -> str:
    target = match.group("target")
    if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
        return match.group(0)  # an absolute URL, or mailto:
    in_repo = posixpath.normpath(posixpath.join(posixpath.dirname(source), target))
    anchor = match.group("anchor") or ""
    if in_repo.startswith("docs/"):
        page = posixpath.relpath(
            in_repo, posixpath.dirname(source.replace("README.md", "docs/index.md"))
        )
        return f"{match.group('open')}{page}{anchor}{match.group('close')}"
    kind = "tree" if (ROOT / in_repo).is_dir() else "blob"
    return f"{match.group('open')}{REPOSITORY}/{kind}/main/{in_repo}{anchor}{match.group('close')}"

"""``sigdl new``: a working plugin distribution rendered from a template kept in the core.

The templates are package data, one folder per kind of plugin
(``sigdl_core/templates/{target,compressor,framework}/``), each a copier template
(``copier.yml`` beside the files). Copier, not cookiecutter, because copier records the
answers in the rendered plugin (``.copier-answers.yml``) and can *update* a plugin to a
newer template later: it renders the old and the new template with the same answers and
merges the difference into the plugin through git, keeping the author's edits.

Copier's update needs both versions of the template in a git repository. A template that
ships inside an installed package has no history, so :func:`versioned_template` keeps a
git repository per template under the user's cache (``$SIGDL_TEMPLATE_CACHE``, default
``~/.cache/sigdl/templates``): each time the packaged template differs from the last commit
there, its files are committed and tagged ``<sigdl-core version>.post<N>``. A plugin's
answers name that repository and the tag it was made from, so ``sigdl new --update DIR``
can bring it up to the template of the installed core.

copier is imported inside the functions that need it; ``sigdl --help`` stays fast.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import __version__
from .errors import BadInputError, InvalidValueError

#: The kinds of plugin ``sigdl new`` renders, each a folder under ``templates/``.
KINDS: tuple[str, ...] = ("target", "compressor", "framework")

#: A plugin name: lower-case words of letters and digits joined by single hyphens.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_NAME_LENGTH = 40

ANSWERS_FILE = ".copier-answers.yml"
_SOURCE_MARKER = "sigdl-template-source"  # kept inside the cache repository's .git folder
_GIT = ("git", "-c", "user.name=sigdl", "-c", "user.email=sigdl@localhost", "-c", "commit.gpgsign=false",
        "-c", "init.defaultBranch=main")


def template_dir(kind: str) -> Path:
    """The packaged copier template of one kind of plugin."""
    if kind not in KINDS:
        raise InvalidValueError(f"unknown kind of plugin '{kind}'", "use one of " + ", ".join(KINDS))
    return Path(__file__).with_name("templates") / kind


def check_name(name: str) -> str:
    """``name`` if it can name a plugin (``acme-board``); else :class:`InvalidValueError`."""
    if not NAME_PATTERN.fullmatch(name or "") or len(name) > MAX_NAME_LENGTH:
        raise InvalidValueError(
            f"'{name}' cannot name a plugin",
            f"use lower-case letters and digits in words joined by hyphens, at most {MAX_NAME_LENGTH} "
            "characters, starting with a letter, e.g. acme-board")
    return name


def names_for(kind: str, name: str) -> dict[str, str]:
    """The distribution, package and entry-point names a plugin called ``name`` gets."""
    snake = name.replace("-", "_")
    return {"name": name, "distribution": f"sigdl-{kind}-{name}", "package": f"sigdl_{kind}_{snake}",
            "entry_point": f"{kind}_{snake}"}


def _cache_root() -> Path:
    env = os.environ.get("SIGDL_TEMPLATE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sigdl" / "templates"


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run([*_GIT, *args], cwd=repo, capture_output=True, text=True)
    if out.returncode != 0:
        raise BadInputError(f"git {' '.join(args)} failed in '{repo}': {out.stderr.strip() or out.stdout.strip()}",
                            "sigdl new needs a working git (copier keeps template versions in git)")
    return out.stdout.strip()


def versioned_template(source: Path, kind: str) -> tuple[Path, str]:
    """The cache repository holding ``source``'s files, and the tag of their current version.

    The files are committed and tagged ``<core version>.post<N>`` when they differ from the
    repository's last commit; otherwise the last tag is returned.
    """
    if shutil.which("git") is None:
        raise BadInputError("git is not installed", "install git: copier keeps template versions in git")
    source = Path(source).resolve()
    if not (source / "copier.yml").is_file():
        raise BadInputError(f"'{source}' is not a copier template (it has no copier.yml)",
                            "give a folder holding copier.yml and the template's files")
    import hashlib

    key = hashlib.sha256(str(source).encode()).hexdigest()[:10]
    repo = _cache_root() / f"{kind}-{key}"
    try:
        return _commit_template(source, repo, kind)
    except OSError as exc:
        raise BadInputError(f"cannot write the template cache '{repo}': {exc.strerror or exc}",
                            "set SIGDL_TEMPLATE_CACHE to a writable folder") from None


def _commit_template(source: Path, repo: Path, kind: str) -> tuple[Path, str]:
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q")
    (repo / ".git" / _SOURCE_MARKER).write_text(f"{kind}\n{source}\n")
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.copytree(source, repo, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
    _git(repo, "add", "-A")
    tags = [t for t in _git(repo, "tag", "--list").split() if t]
    changed = bool(_git(repo, "status", "--porcelain"))
    if changed or not tags:
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"template from {source}")
        tag = f"{__version__}.post{len(tags)}"
        _git(repo, "tag", tag)
        return repo, tag
    return repo, _git(repo, "describe", "--tags", "--abbrev=0")


def new_plugin(kind: str, name: str, parent: Path, template: Path | None = None) -> Path:
    """Renders a ``kind`` plugin called ``name`` into ``parent/sigdl-<kind>-<name>``.

    :param template: a copier template folder to use instead of the packaged one (a
        vendor's fork, say).
    :return: the new plugin's folder.
    Raises :class:`BadInputError` for a bad name or a folder that already exists.
    """
    check_name(name)
    names = names_for(kind, name)
    source = Path(template) if template is not None else template_dir(kind)
    dest = Path(parent) / names["distribution"]
    if dest.exists():
        raise BadInputError(f"'{dest}' already exists",
                            "choose another name or --dir, or bring it up to date with sigdl new --update")
    copier = _copier()
    repo, tag = versioned_template(source, kind)
    from copier.errors import CopierError

    try:
        copier.run_copy(str(repo), str(dest), data={"name": name}, vcs_ref=tag, defaults=True,
                        quiet=True, unsafe=False, skip_tasks=True)
    except CopierError as exc:  # pragma: no cover - a broken template
        shutil.rmtree(dest, ignore_errors=True)
        raise BadInputError(f"could not render the {kind} template: {exc}") from None
    return dest


def _copier() -> Any:
    """The copier module, or a one-line error saying how to install it."""
    try:
        import copier
    except ImportError:
        raise BadInputError("sigdl new needs copier, which is not installed",
                            "pip install 'sigdl-core[plugin-dev]'") from None
    return copier


def _answers(project: Path) -> dict[str, Any]:
    import yaml

    path = Path(project) / ANSWERS_FILE
    if not path.is_file():
        raise BadInputError(f"'{project}' has no {ANSWERS_FILE}", "give the folder sigdl new made")
    try:
        answers = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise BadInputError(f"'{path}' is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(answers, dict) or "_src_path" not in answers:
        raise BadInputError(f"'{path}' does not name the template it came from",
                            "restore it from git, or render a new plugin with sigdl new")
    return answers


def update_plugin(project: Path, template: Path | None = None) -> str:
    """Brings a plugin made by ``sigdl new`` up to the current template (copier's update).

    The plugin must be a clean git work tree (copier merges through git). Conflicting
    edits are left inline, between ``<<<<<<<`` and ``>>>>>>>`` marks. Returns the tag of the
    template version it now follows.
    """
    project = Path(project)
    answers = _answers(project)
    marker = Path(str(answers["_src_path"])) / ".git" / _SOURCE_MARKER
    kind, recorded = (marker.read_text().splitlines() + ["", ""])[:2] if marker.is_file() else ("", "")
    if template is None:
        if kind not in KINDS:
            raise BadInputError(f"the template repository '{answers['_src_path']}' that made '{project}' is gone",
                                "copier needs the old template version to merge; keep "
                                "$SIGDL_TEMPLATE_CACHE, or re-render with sigdl new and move your code over")
        template = Path(recorded) if Path(recorded, "copier.yml").is_file() else template_dir(kind)
    repo, tag = versioned_template(Path(template), kind or "custom")
    if repo.resolve() != Path(str(answers["_src_path"])).resolve():
        raise BadInputError(f"'{project}' was made from the template at '{answers['_src_path']}', not '{repo}'",
                            "update it with the template that made it")
    inside = subprocess.run(["git", "-C", str(project), "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    if inside.returncode != 0:
        raise BadInputError(f"'{project}' is not in a git repository",
                            "copier's update merges through git: git init, git add . and git commit first")
    copier = _copier()
    from copier.errors import CopierError

    try:
        copier.run_update(str(project), defaults=True, overwrite=True, quiet=True, vcs_ref=tag,
                          unsafe=False, skip_tasks=True, conflict="inline")
    except CopierError as exc:
        raise BadInputError(f"could not update '{project}': {exc}".splitlines()[0],
                            "commit your changes first; copier updates clean git work trees") from None
    return tag

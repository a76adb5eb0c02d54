"""``sigdl new``: rendered plugins install, are listed, work, and pass their own tests.

Each plugin is rendered into a temporary folder and pip-installed into a temporary
``--target`` folder put on ``PYTHONPATH`` (entry points are found there), so the shared
venv stays as it was. The slow tests share one rendering and one pip install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sigdl_core.conformance import tiny_onnx_model

SIGDL = [sys.executable, "-m", "sigdl_core.cli"]
PLUGINS = {"target": "acme-board", "compressor": "acme-sparse", "framework": "acme-fw"}


def _run(args: list[str], env: dict[str, str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture
def template_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "template-cache"
    monkeypatch.setenv("SIGDL_TEMPLATE_CACHE", str(cache))
    return cache


def test_sigdl_new_help_imports_no_copier() -> None:
    out = subprocess.run([*SIGDL[:1], "-X", "importtime", *SIGDL[1:], "new", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--update" in out.stdout, out.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"copier", "jinja2", "torch", "onnxruntime"}, sorted(imported & {"copier", "jinja2"})


@pytest.mark.parametrize("args, says", [
    (["new", "target", "Acme_Board"], "'Acme_Board' cannot name a plugin"),
    (["new", "target", "acme--board"], "'acme--board' cannot name a plugin"),
    (["new", "gadget", "acme"], "needs a kind (target, compressor, framework)"),
    (["new", "target"], "needs a kind"),
])
def test_bad_name_or_kind_exits_2_with_one_line(sigdl_cli, template_cache, tmp_path, args, says) -> None:
    result = sigdl_cli([*args, "--dir", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], result.stderr
    assert not (tmp_path / "sigdl-target-acme").exists()


def test_an_existing_folder_exits_2_and_is_left_alone(sigdl_cli, template_cache, tmp_path) -> None:
    existing = tmp_path / "sigdl-target-acme-board"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep")
    result = sigdl_cli(["new", "target", "acme-board", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"sigdl: error: '{existing}' already exists; choose another name or --dir, or bring it up to date "
        "with sigdl new --update"]
    assert [p.name for p in existing.iterdir()] == ["mine.txt"]


def test_an_unwritable_template_cache_exits_2_with_one_line(sigdl_cli, tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SIGDL_TEMPLATE_CACHE", str(blocker / "cache"))
    result = sigdl_cli(["new", "target", "acme-board", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot write the template cache" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sigdl-target-acme-board").exists()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The three plugins rendered by ``sigdl new`` and pip-installed into a temporary folder."""
    root = tmp_path_factory.mktemp("plugin-kit")
    env = {**os.environ, "SIGDL_TEMPLATE_CACHE": str(root / "cache")}
    folders = {}
    for kind, name in PLUGINS.items():
        out = _run([*SIGDL, "new", kind, name, "--dir", str(root), "--json"], env, root)
        assert out.returncode == 0, out.stderr
        folders[kind] = Path(json.loads(out.stdout)["folder"])
    site = root / "site"
    out = _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                "--target", str(site), *map(str, folders.values())], env, root)
    assert out.returncode == 0, out.stderr
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"root": root, "env": env, "folders": folders}


@pytest.mark.slow
def test_a_new_target_is_listed_and_emulated_with_every_figure(installed) -> None:
    env, root = installed["env"], installed["root"]
    listed = _run([*SIGDL, "targets", "--json"], env, root)
    assert listed.returncode == 0, listed.stderr
    spec = next(t for t in json.loads(listed.stdout) if t["name"] == "acme-board")
    assert spec["source"] == "target_acme_board" and "PLACEHOLDER" in spec["description"]
    model = tiny_onnx_model(root / "model.onnx")
    shown = _run([*SIGDL, "test", str(model), "--target", "acme-board", "--quiet"], env, root)
    assert shown.returncode == 0, shown.stderr
    for row in ("latency p50", "fps (batch 1)", "peak memory", "power", "energy / inference"):
        line = next(line for line in shown.stdout.splitlines() if row in line)
        assert "(analytical)" in line and "—" not in line, line
    assert "placeholder figures" in shown.stdout
    as_json = _run([*SIGDL, "test", str(model), "--target", "acme-board", "--json"], env, root)
    report = json.loads(as_json.stdout)["targets"]["acme-board"]
    assert report["latency_ms_p50"] > 0 and report["fps_batch1"] > 0 and report["power_w"] > 0
    assert report["peak_memory_bytes"] > 4 * 1440  # at least the fc layer's float32 weights


@pytest.mark.slow
def test_a_new_compressor_and_framework_are_listed(installed) -> None:
    env, root = installed["env"], installed["root"]
    compressors = _run([*SIGDL, "compressors", "--json"], env, root)
    assert "acme-sparse" in [c["name"] for c in json.loads(compressors.stdout)]
    frameworks = _run([*SIGDL, "frameworks", "--json"], env, root)
    assert "acme-fw" in [f["name"] for f in json.loads(frameworks.stdout)]
    models = _run([*SIGDL, "models", "--json"], env, root)
    assert "acme-fw-mlp" in [m["name"] for m in json.loads(models.stdout)]


@pytest.mark.slow
def test_the_generated_tests_and_the_conformance_suite_pass(installed) -> None:
    folders = list(installed["folders"].values())
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-rs",
                *map(str, folders)], installed["env"], installed["root"])
    assert out.returncode == 0, out.stdout[-4000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, out.stdout[-2000:]
    for contract in ("test_numbers_have_methods[acme-board]", "test_projection_keeps_compressed_form[acme-sparse]",
                     "test_loading_runs_no_code[acme-fw]"):
        assert contract in _run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                 *map(str, folders)], installed["env"], installed["root"]).stdout


@pytest.mark.slow
def test_update_merges_a_newer_template_and_keeps_the_authors_edits(sigdl_cli, template_cache, tmp_path) -> None:
    from sigdl_core.plugin_templates import template_dir

    template = tmp_path / "template"
    shutil.copytree(template_dir("target"), template)
    made = sigdl_cli(["new", "target", "acme-board", "--dir", str(tmp_path), "--template", str(template)])
    assert made.exit_code == 0, made.stderr
    plugin = tmp_path / "sigdl-target-acme-board"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    not_git = sigdl_cli(["new", "--update", str(plugin), "--template", str(template)])
    assert not_git.exit_code == 2 and "is not in a git repository" in not_git.stderr
    subprocess.run([*git, "init", "-q"], cwd=plugin, check=True)
    datasheet = plugin / "sigdl_target_acme_board" / "datasheet.py"
    datasheet.write_text(datasheet.read_text().replace("CORES = 4 ", "CORES = 6 "))
    subprocess.run([*git, "add", "."], cwd=plugin, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the author's board"], cwd=plugin, check=True)

    readme = template / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n## Added by a newer template\n")
    updated = sigdl_cli(["new", "--update", str(plugin), "--template", str(template), "--json"])
    assert updated.exit_code == 0, updated.stderr
    tag = json.loads(updated.stdout)["template_version"]
    assert tag.endswith(".post1")
    assert "## Added by a newer template" in (plugin / "README.md").read_text()
    assert "CORES = 6 " in datasheet.read_text()
    assert f"_commit: {tag}" in (plugin / ".copier-answers.yml").read_text()

"""Packaging: the wheel carries resources/, and the PyInstaller bundle really runs without Python.

The bundle tests are marked slow: they build the one-folder bundle once per session (a few minutes on
two cores) into a temporary folder, never into the checkout, then run it in a clean environment (only
HOME, PATH=/usr/bin:/bin, TMPDIR and LANG) the way it runs on a machine that has no Python at all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from desktop import __version__
from desktop.core.paths import APP_ID

ROOT = Path(__file__).resolve().parents[1]
# What a wheel must carry for desktop.core.paths.resources_dir() to work in an installed (non-editable) app.
REQUIRED_RESOURCES = ("catalog.json", "icons/tandem.svg", "icons/tandem-256.png", "icons/tandem.ico",
                      "icons/tandem.icns", f"{APP_ID}.desktop", f"{APP_ID}.metainfo.xml")
# A budget that catches a regression (a Qt module or test package creeping back in), not a target.
BUNDLE_SIZE_LIMIT_MB = 400
BUILD_TIMEOUT_S = 1500


def _copy_source(dest: Path) -> Path:
    """The files a source distribution has, copied so the build can't touch the shared checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("desktop", "resources"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    if not (dest / "README.md").exists():
        (dest / "README.md").write_text("Tandem\n")
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = _copy_source(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("tandem_llm-*.whl")
    return built


def test_wheel_carries_resources(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [r for r in REQUIRED_RESOURCES if f"desktop/resources/{r}" not in names]
    assert missing == []
    in_checkout = {p.relative_to(ROOT / "resources").as_posix() for p in (ROOT / "resources").rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
    assert {f"desktop/resources/{r}" for r in in_checkout} <= names
    assert not any(n.startswith("resources/") for n in names), "resources must live inside the package"


def test_wheel_carries_the_eval_tasks(wheel):
    """`tandem eval` runs the project's own lm-eval tasks offline: their YAML, questions and loader ship inside the
    package (pyproject's package-data), every file of the tasks folder."""
    names = set(zipfile.ZipFile(wheel).namelist())
    tasks = ROOT / "desktop" / "eval" / "tasks"
    in_checkout = {f"desktop/eval/tasks/{p.name}" for p in tasks.iterdir() if p.suffix in (".yaml", ".jsonl", ".py")}
    assert {"desktop/eval/tasks/tandem_mc.yaml", "desktop/eval/tasks/tandem_mc.jsonl",
            "desktop/eval/tasks/tandem_data.py"} <= in_checkout
    assert in_checkout <= names


def test_installed_wheel_finds_its_resources(wheel, tmp_path):
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:  # what pip install does for a pure wheel: unpack into site-packages
        zf.extractall(target)
    code = "from desktop.core.paths import resources_dir; print(resources_dir())"
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    found = Path(result.stdout.strip())
    assert found == target / "desktop" / "resources"
    assert (found / "catalog.json").is_file()


# --- the spec's macOS and Windows branches (they can only be built on those systems) -----------------------


class _Step:
    """Stands in for PyInstaller's build steps: records what the spec asks of each."""

    calls: list[tuple[str, tuple, dict]] = []

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        # the analysed form PyInstaller hands back: (destination path, source, type code)
        self.binaries = [(f"{dest}/{Path(src).name}", src, "BINARY") for src, dest in kwargs.get("binaries", [])]
        self.datas = [(dest, src, "DATA") for src, dest in kwargs.get("datas", [])]
        self.scripts, self.pure = [], []
        _Step.calls.append((type(self).__name__, args, kwargs))


def _run_spec(monkeypatch, tmp_path, platform: str) -> dict[str, list[dict]]:
    """Execute packaging/tandem.spec as PyInstaller would on ``platform``, with its build steps recorded."""
    import importlib

    if platform != sys.platform:
        # PyInstaller's helpers query the real interpreter: answer for them before pretending to be another OS.
        hooks = importlib.import_module("PyInstaller.utils.hooks")
        monkeypatch.setattr(hooks, "collect_submodules", lambda package, filter=None: [f"{package}.stub"])
        monkeypatch.setattr(hooks, "copy_metadata", lambda name: [])
        importlib.import_module("llama_cpp")  # imported here as what it is: a Linux build
        monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(sys, "path", list(sys.path))
    _Step.calls = []
    steps = {name: type(name, (_Step,), {}) for name in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")}
    spec = ROOT / "packaging" / "tandem.spec"
    namespace = {"SPECPATH": str(spec.parent), "workpath": str(tmp_path), "__file__": str(spec), **steps}
    exec(compile(spec.read_text(), str(spec), "exec"), namespace)
    calls: dict[str, list[dict]] = {}
    for name, _, kwargs in _Step.calls:
        calls.setdefault(name, []).append(kwargs)
    return calls


def test_spec_macos_bundle_has_the_info_plist_keys(monkeypatch, tmp_path):
    import plistlib

    calls = _run_spec(monkeypatch, tmp_path, "darwin")
    (exe,) = calls["EXE"]
    assert exe["name"] == "tandem" and exe["console"] is False  # console=True would mean LSBackgroundOnly
    (bundle,) = calls["BUNDLE"]
    assert bundle["name"] == "Tandem.app" and bundle["bundle_identifier"] == APP_ID
    assert Path(bundle["icon"]).suffix == ".icns" and Path(bundle["icon"]).is_file()
    plist = bundle["info_plist"]
    assert plist["CFBundleIdentifier"] == APP_ID
    assert plist["CFBundleShortVersionString"] == __version__ and bundle["version"] == __version__
    assert plist["NSHighResolutionCapable"] is True
    assert tuple(int(x) for x in plist["LSMinimumSystemVersion"].split(".")) >= (11, 0)  # Metal needs 11+
    assert plist["CFBundleIconFile"] == Path(bundle["icon"]).name
    plistlib.loads(plistlib.dumps(plist))  # what PyInstaller writes into Contents/Info.plist


def test_spec_windows_has_console_and_windowed_executables(monkeypatch, tmp_path):
    calls = _run_spec(monkeypatch, tmp_path, "win32")
    exes = {e["name"]: e for e in calls["EXE"]}
    assert exes["tandem"]["console"] is True  # the CLI: `tandem selftest` prints to the console
    assert exes["tandemw"]["console"] is False  # the Start-menu shortcut (packaging/windows/tandem.iss)
    for exe in exes.values():
        assert Path(exe["icon"]).suffix == ".ico" and Path(exe["icon"]).is_file()
    assert "BUNDLE" not in calls
    iss = (ROOT / "packaging" / "windows" / "tandem.iss").read_text()
    assert "tandemw.exe" in iss and "AppId={#AppIdString}" in iss and APP_ID in iss


def test_spec_linux_collects_llama_libraries_and_resources(monkeypatch, tmp_path):
    calls = _run_spec(monkeypatch, tmp_path, "linux")
    (analysis,) = calls["Analysis"]
    dests = {dest for _, dest in analysis["binaries"]}
    assert dests == {"llama_cpp/lib"}
    assert any(Path(src).name.startswith("libllama") for src, _ in analysis["binaries"])
    assert (str(ROOT / "resources"), "resources") in analysis["datas"]
    assert "desktop.cli.selftest_cmd" in analysis["hiddenimports"]
    assert "desktop.engine.worker" in analysis["hiddenimports"]
    assert {"tkinter", "pytest", "PySide6.QtWebEngineCore", "llama_cpp.server"} <= set(analysis["excludes"])
    # the bundle carries the server (`tandem serve`, the Server panel): its HTTP stack is not excluded
    assert "fastapi" in analysis["hiddenimports"]
    assert "uvicorn.protocols.http.h11_impl" in analysis["hiddenimports"]
    assert not {"fastapi", "uvicorn", "starlette"} & set(analysis["excludes"])


# --- the bundle -------------------------------------------------------------------------------------------


def _clean_env(home: Path) -> dict[str, str]:
    """As on a machine without Python: no venv on PATH, no PYTHONPATH, no TANDEM_HOME, a fresh HOME."""
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "LANG": "C.UTF-8"}


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    if not sys.platform.startswith("linux"):
        pytest.skip("the bundle test builds the Linux bundle (macOS/Windows: .github/workflows/release.yml)")
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        pytest.skip("PyInstaller is not installed (it is in the [test] extra)")
    from PyInstaller.depend.bindepend import get_python_library_path

    if get_python_library_path() is None:
        pytest.skip("this Python has no shared libpython, which PyInstaller needs (Debian: apt-get install "
                    "libpython3-dev; pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)")
    dist = tmp_path_factory.mktemp("dist")
    work = tmp_path_factory.mktemp("pyinstaller-work")
    start = time.monotonic()
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_bundle.sh"), "--dist", str(dist), "--work", str(work)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    shutil.rmtree(work, ignore_errors=True)
    folder = dist / "tandem"
    print(f"\nbundle built in {time.monotonic() - start:.0f} s: {_du_mb(folder):.0f} MB in {folder}")
    return folder


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)  # the first one builds the bundle
def test_bundle_selftest_passes_in_a_clean_environment(bundle, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = subprocess.run([str(bundle / "tandem"), "selftest"], capture_output=True, text=True,
                            env=_clean_env(home), cwd=tmp_path, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "FAIL" not in output
    assert "bundle at" in output, "the selftest did not run frozen"
    for check in ("load base model in a worker", "stream a raw completion", "stream a templated chat",
                  "read metadata", "open the main window"):
        assert any(line.split()[:1] == ["ok"] and f" {check}:" in line for line in output.splitlines()), \
            f"{check!r} did not pass:\n{output}"
    assert "All 8 checks passed" in output, output


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)  # the first one builds the bundle
def test_bundle_json_selftest_reports_worker_processes(bundle, tmp_path):
    result = subprocess.run([str(bundle / "tandem"), "selftest", "--json", "--no-gui"], capture_output=True,
                            text=True, env=_clean_env(tmp_path), cwd=tmp_path, timeout=300)
    report = json.loads(result.stdout)
    assert report["ok"] is True and result.returncode == 0, result.stdout + result.stderr
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["open the main window"] == "skip"
    loads = [c for c in report["checks"] if c["name"].startswith("load ")]
    assert len(loads) == 2 and all("worker pid" in c["detail"] for c in loads)


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)  # the first one builds the bundle
def test_bundle_generates_what_the_source_tree_generates(bundle, tiny_base, tmp_path):
    """The same llama.cpp build, seed and prompt: the bundle's engine must give the same tokens."""
    args = ["complete", "--model", str(tiny_base), "--max-tokens", "12", "--seed", "7", "--threads", "1",
            "--json", "The king"]
    frozen = subprocess.run([str(bundle / "tandem"), *args], capture_output=True, text=True,
                            env=_clean_env(tmp_path), cwd=tmp_path, timeout=300)
    assert frozen.returncode == 0, frozen.stderr
    source = subprocess.run([sys.executable, "-m", "desktop", *args], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert source.returncode == 0, source.stderr
    assert json.loads(frozen.stdout)["text"] == json.loads(source.stdout)["text"]
    assert json.loads(frozen.stdout)["stats"]["completion_tokens"] > 0


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)  # the first one builds the bundle
def test_bundle_reports_errors_in_one_line(bundle, tmp_path):
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_text("hello")
    result = subprocess.run([str(bundle / "tandem"), "complete", "--model", str(not_a_model), "hi"],
                            capture_output=True, text=True, env=_clean_env(tmp_path), timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("tandem: error: ") and result.stderr.count("\n") == 1, result.stderr
    version = subprocess.run([str(bundle / "tandem"), "--version"], capture_output=True, text=True,
                             env=_clean_env(tmp_path), timeout=120)
    assert version.stdout.strip() == f"tandem {__version__}"


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)  # the first one builds the bundle
def test_bundle_is_lean(bundle):
    internal = bundle / "_internal"
    libs = {p.name for p in (internal / "llama_cpp" / "lib").iterdir()}
    assert any(name.startswith("libllama") for name in libs), libs
    assert (internal / "resources" / f"{APP_ID}.desktop").is_file()
    present = {p.relative_to(internal).as_posix() for p in internal.rglob("*")}
    unwanted = [name for name in present if any(bad in name for bad in (
        "tkinter", "_pytest", "pytestqt", "PyInstaller/", "QtWebEngine", "libQt6Quick", "libQt6Qml",
        "libQt6Pdf", "libQt6Network", "Qt/translations", "plugins/sqldrivers", "plugins/tls",
        "imageformats/libqpdf", "libqtvirtualkeyboardplugin"))]
    assert unwanted == []
    size = _du_mb(bundle)
    print(f"\nbundle: {size:.0f} MB; largest: " + ", ".join(
        f"{p.name} {p.stat().st_size / 1e6:.0f} MB"
        for p in sorted((p for p in internal.rglob("*.so*") if not p.is_symlink()),
                        key=lambda p: p.stat().st_size, reverse=True)[:6]))
    assert size < BUNDLE_SIZE_LIMIT_MB


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT_S + 300)  # the first one builds the bundle
def test_install_script_puts_a_launcher_in_local(bundle, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)
    result = subprocess.run(["sh", str(bundle / "install.sh")], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    local = home / ".local"
    installed = local / "lib" / "tandem" / "tandem"
    entry = local / "share" / "applications" / f"{APP_ID}.desktop"
    assert installed.is_file() and os.access(installed, os.X_OK)
    assert (local / "bin" / "tandem").resolve() == installed.resolve()
    assert f'Exec="{installed}"' in entry.read_text()
    assert (local / "share" / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png").is_file()
    assert (local / "share" / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    version = subprocess.run([str(local / "bin" / "tandem"), "--version"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert version.stdout.strip() == f"tandem {__version__}"

    result = subprocess.run(["sh", str(installed.parent / "install.sh"), "--uninstall"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not installed.exists() and not entry.exists() and not (local / "bin" / "tandem").exists()


# --- tandem selftest from the source tree (fast) -----------------------------------------------------------


def test_selftest_passes_from_source(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TMPDIR": str(tmp_path)}
    env.pop("TANDEM_HOME", None)  # the selftest isolates itself; it must not need the test's home
    result = subprocess.run([sys.executable, "-m", "desktop", "selftest", "--json"], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=300)
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["ok"], result.stdout + result.stderr
    assert [c["status"] for c in report["checks"]] == ["ok"] * 8
    assert report["kept_folder"] is None
    assert list(tmp_path.glob("tandem-selftest-*")) == [], "the scratch folder must be removed"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 display names are a Linux matter")
def test_selftest_fails_cleanly_when_the_window_cannot_open(tmp_path):
    """A display Qt can't use is one FAIL line and exit 1, not Qt aborting the process."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "TANDEM_HOME")}
    env.update(DISPLAY=":4711", TMPDIR=str(tmp_path))  # no X server there
    result = subprocess.run([sys.executable, "-m", "desktop", "selftest"], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.split()[:1] == ["FAIL"]]
    assert len(failed) == 1 and "open the main window" in failed[0] and "':4711'" in failed[0], result.stdout
    assert "selftest FAILED (1 of 8 checks)" in result.stdout
    (kept,) = tmp_path.glob("tandem-selftest-*")
    assert str(kept) in result.stdout


def test_selftest_failure_is_reported_and_keeps_the_evidence(monkeypatch, tmp_path, tandem_home):
    from desktop import selftest

    def broken_writer(state):
        raise selftest.CheckFailed("disk says no")

    checks = tuple((name, broken_writer if name == "write tiny models" else func, needs)
                   for name, func, needs in selftest.CHECKS)
    monkeypatch.setattr(selftest, "CHECKS", checks)
    seen = []
    outcome = selftest.run_selftest(gui=False, report=seen.append, temp_root=str(tmp_path))
    statuses = {r.name: r.status for r in outcome.results}
    assert not outcome.ok
    assert statuses["write tiny models"] == "FAIL" and statuses["resources"] == "ok"
    assert statuses["load base model in a worker"] == "skip" and statuses["stream a templated chat"] == "skip"
    assert [r.name for r in seen] == [r.name for r in outcome.results]
    assert outcome.kept_folder is not None and outcome.kept_folder.is_dir()
    assert os.environ["TANDEM_HOME"] == str(tandem_home), "the selftest must restore TANDEM_HOME"
    assert "FAIL" in selftest.format_result(outcome.results[1]) and "disk says no" in outcome.results[1].detail

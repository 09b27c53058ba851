"""The Models page over the real backend: catalog with fit verdicts, Hugging Face search and downloads against
the loopback fake hub (tests/hub/fakehub.py), the library with broken files, import and remove, offline mode.

Everything goes through the page's own widgets and worker threads; nothing in the backend is replaced. The
only value the tests set by hand is the machine's free memory, where a verdict must not depend on what else
the test machine is running.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLineEdit, QMessageBox, QTreeWidgetItem, QWidget

from desktop.core.catalog import load_catalog
from desktop.core.fit import GiB, human_bytes
from desktop.core.library import Library
from desktop.core.settings import Settings, save_settings
from desktop.ui.models.models_catalog import pair_files
from desktop.ui.models.models_common import MachineMemory
from desktop.ui.models.models_page import TAB_CATALOG, ModelsPage
from desktop.ui.runtime.context import AppContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hub"))
from fakehub import FakeHub  # noqa: E402  (the models helper's loopback hub)

WAIT_MS = 30_000
REPO = "tandem-test/Tiny-GGUF"


@pytest.fixture
def models_folder(tandem_home) -> Path:
    folder = tandem_home / "models"
    folder.mkdir()
    save_settings(Settings(models_dir=str(folder), threads=1, gpu_layers="0"))
    return folder


@pytest.fixture
def hub(monkeypatch, tiny_base, tiny_instruct):
    fake = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    fake.add_repo(REPO, {"tiny-base-Q8_0.gguf": tiny_base.read_bytes(),
                         "tiny-instruct-Q8_0.gguf": tiny_instruct.read_bytes(), "README.md": b"# tiny\n"},
                  downloads=1500, likes=7)
    yield fake
    fake.stop()


@pytest.fixture
def make_page(qtbot, models_folder):
    """A Models page on its own AppContext (as the window builds it), shown, with its first reads done."""
    made = []

    def make() -> ModelsPage:
        context = AppContext()
        page = ModelsPage(context)
        qtbot.addWidget(page)
        page.resize(1200, 760)
        page.show()
        qtbot.waitUntil(lambda: page.catalog is not None and page.library_empty is not None
                        and page.center.is_ready and page.hardware_known, timeout=WAIT_MS)
        made.append((page, context))
        return page

    yield make
    for page, context in made:
        page.shutdown()
        context.shutdown()


@pytest.fixture
def page(make_page) -> ModelsPage:
    return make_page()


def tree_texts(page) -> list[str]:
    tree = page.library_view.tree
    return [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())]


def tree_item(page, file_name: str) -> QTreeWidgetItem:
    tree = page.library_view.tree
    for i in range(tree.topLevelItemCount()):
        item = tree.topLevelItem(i)
        if (item.data(0, 0x0100) or "").endswith(file_name):
            return item
    raise AssertionError(f"{file_name} not in the library tree: {tree_texts(page)}")


# --- catalog ------------------------------------------------------------------------------------------


def test_catalog_lists_every_pair_with_the_fit_verdict_for_this_machine(page):
    catalog = load_catalog()
    view = page.catalog_view
    assert view.table.rowCount() == len(catalog.families) >= 8
    memory = page.memory
    assert memory is not None and memory.free_ram  # read from this machine (Linux: /proc/meminfo)
    for fam in catalog.families:
        expected = fam.pair_fit(memory.free_ram, min(4096, fam.context_length), fam.base.default_quant,
                                free_vram=memory.free_vram).verdict
        assert view.verdict(fam.id) == expected, fam.id
    assert "RAM free" in view.memory_label.text()

    # With 2 GiB free, a 7B pair can't fit and the 135M pair does: the verdicts follow the machine.
    page.set_memory(MachineMemory(free_ram=2 * GiB, total_ram=4 * GiB))
    assert view.verdict("mistral-7b-v0.3") == "won't fit"
    assert view.verdict("smollm2-135m") == "fits"

    # Changing the quant changes the download size and re-evaluates the fit.
    fam = catalog.get("qwen2.5-1.5b")
    combo = view.quant_combo(fam.id)
    size_cell = view.table.item(view.row_of(fam.id), 4)
    q4 = sum(f.size for f in pair_files(fam, "Q4_K_M"))
    q8 = sum(f.size for f in pair_files(fam, "Q8_0"))
    assert size_cell.data(0x0100) == q4
    combo.setCurrentText("Q8_0")
    assert view.table.item(view.row_of(fam.id), 4).data(0x0100) == q8
    assert view.verdict(fam.id) == fam.pair_fit(2 * GiB, 4096, "Q8_0").verdict


def test_empty_library_downloads_the_smallest_pair_that_fits_with_one_button(page, qtbot, hub, tiny_base,
                                                                            tiny_instruct, models_folder):
    assert page.library_empty is True
    assert page.tabs.currentIndex() == TAB_CATALOG  # first start lands where models come from
    page.set_memory(MachineMemory(free_ram=8 * GiB, total_ram=16 * GiB))
    expected = load_catalog().smallest_pair_that_fits(8 * GiB, 4096)
    card = page.welcome
    assert card.isVisible()
    assert expected.title in card.text.text() and expected.title in card.button.text()
    assert card.fit.text() == "fits"

    # Serve that pair's two catalog files from the fake hub (tiny models standing in for the real ones).
    base, instruct = pair_files(expected, None)
    hub.add_repo(base.repo, {base.file: tiny_base.read_bytes()})
    hub.add_repo(instruct.repo, {instruct.file: tiny_instruct.read_bytes()})

    fired = []
    page.context.libraryChanged.connect(lambda entries: fired.append(entries))
    card.button.click()
    assert {s.filename for s in page.center.states()} == {base.file, instruct.file}
    qtbot.waitUntil(lambda: all(s.kind == "done" for s in page.center.states()), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not page.library_empty and len(page.library_view.entries) == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: any(len(f) == 2 for f in fired), timeout=WAIT_MS)

    by_name = {e.path.name: e for e in page.library_view.entries}
    assert by_name[base.file].kind == "base" and by_name[instruct.file].kind == "instruct"
    assert by_name[base.file].pair == models_folder / instruct.file  # the pair is linked in the library
    assert not card.isVisible()
    assert page.catalog_view.action_button(expected.id).text() == "Installed ✓"


def test_catalog_cells_stay_in_their_cells_and_badges_are_not_clipped_after_download_pair(page, qtbot, hub,
                                                                                          tiny_base, tiny_instruct):
    """Clicking "Download pair" on the first row once left the old button and badge painted over that row's
    name, and the Fit badge was cut to "fits fi"."""
    view = page.catalog_view
    page.tabs.setCurrentIndex(TAB_CATALOG)
    page.set_memory(MachineMemory(free_ram=3 * GiB, total_ram=4 * GiB))  # fits, tight and won't fit rows
    fam = view.families[0]
    base, instruct = pair_files(fam, view.current_quant(fam.id))
    hub.delay = 0.01  # a slow download: the row stays "Downloading…" while it is looked at
    hub.add_repo(base.repo, {base.file: tiny_base.read_bytes()})
    hub.add_repo(instruct.repo, {instruct.file: tiny_instruct.read_bytes()})
    view.action_button(fam.id).click()
    qtbot.waitUntil(lambda: view.action_button(fam.id).text() == "Downloading…", timeout=WAIT_MS)
    qtbot.wait(50)  # the deferred deletions and geometry updates

    table = view.table
    verdicts = set()
    for row in range(table.rowCount()):
        for column in range(table.columnCount()):
            holder = table.cellWidget(row, column)
            if holder is None:
                continue
            cell = table.visualRect(table.model().index(row, column))
            assert holder.isVisible() and cell.contains(holder.geometry()), (row, column)
            for child in holder.findChildren(QWidget):
                if not child.isVisible():
                    continue
                inside = child.geometry().translated(holder.pos())
                assert cell.contains(inside), (row, column, child.objectName())
                text = getattr(child, "text", lambda: "")()
                if text:  # the whole text fits the widget (a badge's padding or a button's bevel aside)
                    assert child.fontMetrics().horizontalAdvance(text) <= child.contentsRect().width(), text
        verdicts.add(view.verdict(view.families[row].id))
    assert {"fits", "won't fit"} <= verdicts
    # Nothing else is painted in the table: every visible widget on its viewport is a cell's widget.
    cells = {id(table.cellWidget(r, c)) for r in range(table.rowCount()) for c in range(table.columnCount())}
    strays = [w for w in table.viewport().findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
              if w.isVisible() and id(w) not in cells]
    assert strays == []


# --- Hugging Face search ------------------------------------------------------------------------------


def test_search_lists_repos_and_a_repos_files_with_split_parts_grouped(page, qtbot, hub, tiny_base):
    data = tiny_base.read_bytes()
    hub.add_repo("someone/Tiny-Split-GGUF", {
        "tiny-f16-00001-of-00002.gguf": data[:400_000], "tiny-f16-00002-of-00002.gguf": data[400_000:],
        "tiny-Q4_K_M.gguf": data[:300_000], "mmproj-tiny-f16.gguf": b"x" * 10,
    }, downloads=90_000, likes=321)
    view = page.search_view
    view.query.setText("tiny")
    view.search_button.click()
    qtbot.waitUntil(lambda: view.result_table.rowCount() == 2, timeout=WAIT_MS)
    repos = [view.result_table.item(r, 0).text() for r in range(2)]
    assert repos == ["someone/Tiny-Split-GGUF", REPO]  # most downloaded first
    assert view.result_table.item(0, 1).text() == "90k" and view.result_table.item(0, 2).text() == "321"
    assert view.result_table.item(0, 3).text() == "2026-01-02"

    view.result_table.selectRow(0)
    qtbot.waitUntil(lambda: view.file_table.rowCount() == 2, timeout=WAIT_MS)
    names = [view.file_table.item(r, 0).text() for r in range(2)]
    assert names == ["tiny-Q4_K_M.gguf", "tiny-f16.gguf (2 parts)"]  # smallest first; projector left out
    assert [view.file_table.item(r, 1).text() for r in range(2)] == ["Q4_K_M", "F16"]
    assert view.file_table.item(1, 2).text() == human_bytes(len(data))
    assert view.file_button("tiny-f16-00001-of-00002.gguf").isEnabled()

    # A repository that does not exist: one line in the page, nothing else.
    view.open_repo("nobody/missing-GGUF")
    qtbot.waitUntil(lambda: view.notice.level == "error", timeout=WAIT_MS)
    text = view.notice.text()
    assert "nobody/missing-GGUF" in text and "\n" not in text and "Traceback" not in text


# --- downloads ----------------------------------------------------------------------------------------


def _longest_stall(qtbot, until, timeout_ms: int) -> float:
    """Run the event loop until ``until()``; return the longest gap between 10 ms timer ticks (seconds)."""
    ticks = [time.monotonic()]
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    try:
        qtbot.waitUntil(until, timeout=timeout_ms)
    finally:
        timer.stop()
    return max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) if len(ticks) > 1 else 0.0


def test_download_shows_progress_pauses_resumes_and_lands_in_the_library(page, qtbot, hub, models_folder,
                                                                        tiny_base):
    hub.delay = 0.01  # ~0.4 MB/s: slow enough to see progress and pause mid-file
    name = "tiny-base-Q8_0.gguf"
    download_id = f"{REPO}:{name}"
    view = page.search_view
    view.open_repo(REPO)
    qtbot.waitUntil(lambda: view.file_table.rowCount() == 2, timeout=WAIT_MS)
    view.file_button(name).click()
    assert view.file_button(name).text() == "Downloading…"

    row = lambda: page.downloads_view.row(download_id)  # noqa: E731
    state = lambda: page.center.state(download_id)  # noqa: E731
    stall = _longest_stall(qtbot, lambda: state() is not None and state().kind == "progress"
                           and 0 < state().bytes < state().total, WAIT_MS)
    bar = row().bar
    assert 0 < bar.value() < bar.maximum()
    assert "KB of" in row().status.text() and "/s" in row().status.text()
    assert page.tabs.tabText(3) == "Downloads (1)"

    row().pause_button.click()
    qtbot.waitUntil(lambda: state().kind == "paused", timeout=WAIT_MS)
    paused_at = (models_folder / f"{name}.part").stat().st_size
    assert 0 < state().bytes <= paused_at < tiny_base.stat().st_size  # (the event's count may lag the file)
    assert not (models_folder / name).exists()  # nothing half-downloaded in the library
    assert not row().resume_button.isHidden() and row().pause_button.isHidden()
    assert "Paused at" in row().status.text()

    with qtbot.waitSignal(page.context.libraryChanged, timeout=WAIT_MS,
                          check_params_cb=lambda entries: any(e.file_name == name for e in entries)):
        row().resume_button.click()
        qtbot.waitUntil(lambda: state().kind == "done", timeout=WAIT_MS)
    assert hub.file_gets(name)[-1].range_start == paused_at  # resume fetched only the missing bytes
    assert (models_folder / name).read_bytes() == tiny_base.read_bytes()
    assert "verified" in row().status.text()
    qtbot.waitUntil(lambda: any(e.path.name == name for e in page.library_view.entries), timeout=WAIT_MS)
    assert tree_item(page, name).text(1) == "base"
    assert view.file_button(name).text() == "In library ✓"
    print(f"\nlongest event-loop stall while downloading: {stall * 1000:.0f} ms")
    assert stall < 1.0  # generous: the GUI thread never waits on the network


def test_paused_and_interrupted_downloads_are_found_after_a_restart(make_page, qtbot, hub, models_folder,
                                                                   tiny_instruct):
    hub.delay = 0.01
    first = make_page()
    name = "tiny-instruct-Q8_0.gguf"
    download_id = f"{REPO}:{name}"
    first.download_files([(REPO, name)])
    qtbot.waitUntil(lambda: (s := first.center.state(download_id)) is not None and s.bytes > 0, timeout=WAIT_MS)
    first.shutdown()  # what closing the window does: running downloads pause, their .part stays
    qtbot.waitUntil(lambda: first.center.state(download_id).kind == "paused", timeout=WAIT_MS)
    on_disk = (models_folder / f"{name}.part").stat().st_size

    second = make_page()  # a new session on the same folder
    qtbot.waitUntil(lambda: second.downloads_view.row(download_id) is not None, timeout=WAIT_MS)
    row = second.downloads_view.row(download_id)
    assert second.center.state(download_id).kind == "paused"
    assert "Paused at" in row.status.text() and not row.resume_button.isHidden()
    assert row.bar.value() == int(1000 * on_disk / tiny_instruct.stat().st_size)

    # An app that was killed mid-transfer leaves its state file saying "downloading": shown as interrupted.
    state_file = models_folder / f"{name}.part.json"
    data = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**data, "status": "downloading"}))
    third = make_page()
    qtbot.waitUntil(lambda: third.downloads_view.row(download_id) is not None, timeout=WAIT_MS)
    assert third.center.state(download_id).kind == "interrupted"
    row = third.downloads_view.row(download_id)
    assert "Interrupted" in row.status.text()
    hub.delay = 0.0
    row.resume_button.click()
    qtbot.waitUntil(lambda: third.center.state(download_id).kind == "done", timeout=WAIT_MS)
    assert hub.file_gets(name)[-1].range_start == on_disk
    assert (models_folder / name).read_bytes() == tiny_instruct.read_bytes()


def test_gated_repo_download_says_a_token_is_needed_and_opens_the_token_field(page, qtbot, hub, tiny_base):
    hub.add_repo("meta-test/Gated-GGUF", {"gated-Q4_K_M.gguf": tiny_base.read_bytes()}, gated=True)
    download_id = "meta-test/Gated-GGUF:gated-Q4_K_M.gguf"
    page.download_files([("meta-test/Gated-GGUF", "gated-Q4_K_M.gguf")])
    qtbot.waitUntil(lambda: page.center.state(download_id).kind == "error", timeout=WAIT_MS)
    row = page.downloads_view.row(download_id)
    text = row.status.text()
    assert "meta-test/Gated-GGUF" in text and "token" in text and "\n" not in text
    assert not row.token_button.isHidden()
    row.token_button.click()
    dialog = page.findChild(QLineEdit, "hfTokenEdit").window()
    assert dialog is not page.window() and dialog.isVisible()
    dialog.close()


def test_cancel_deletes_the_partial_download_and_a_checksum_mismatch_is_one_line(page, qtbot, hub, models_folder):
    hub.delay = 0.01
    name = "tiny-base-Q8_0.gguf"
    download_id = f"{REPO}:{name}"
    page.download_files([(REPO, name)])
    qtbot.waitUntil(lambda: (s := page.center.state(download_id)) is not None and s.bytes > 0, timeout=WAIT_MS)
    page.downloads_view.row(download_id).cancel_button.click()
    qtbot.waitUntil(lambda: page.center.state(download_id).kind == "cancelled", timeout=WAIT_MS)
    assert "Cancelled" in page.downloads_view.row(download_id).status.text()
    assert not list(models_folder.iterdir())  # no .part, no state file, no model

    hub.delay = 0.0
    hub.corrupt = True  # the bytes do not match the sha256 the hub announces
    page.download_files([(REPO, name)])
    qtbot.waitUntil(lambda: page.center.state(download_id).kind == "error", timeout=WAIT_MS)
    row = page.downloads_view.row(download_id)
    text = row.status.text()
    assert "checksum" in text and "deleted" in text and "\n" not in text
    assert not row.resume_button.isHidden() and row.resume_button.text() == "Retry"
    assert not (models_folder / name).exists() and not (models_folder / f"{name}.part").exists()

    hub.corrupt = False
    row.resume_button.click()  # Retry
    qtbot.waitUntil(lambda: page.center.state(download_id).kind == "done", timeout=WAIT_MS)
    assert (models_folder / name).exists()


def test_search_without_a_network_says_so_in_one_line(page, qtbot):
    view = page.search_view  # HF_ENDPOINT points at a closed port (tests/conftest.py)
    view.query.setText("qwen")
    view.search()
    qtbot.waitUntil(lambda: view.notice.level == "error", timeout=WAIT_MS)
    text = view.notice.text()
    assert "could not reach" in text and "\n" not in text
    assert view.search_button.isEnabled()  # nothing is stuck: the user can try again


# --- the library --------------------------------------------------------------------------------------


def test_library_shows_metadata_pairs_and_broken_files_with_their_reasons(make_page, qtbot, models_folder,
                                                                         tiny_base, tiny_instruct):
    (models_folder / "tiny-base.gguf").write_bytes(tiny_base.read_bytes())
    (models_folder / "tiny-instruct.gguf").write_bytes(tiny_instruct.read_bytes())
    (models_folder / "notes.gguf").write_text("these are my notes, not a model")
    (models_folder / "cut-short.gguf").write_bytes(tiny_base.read_bytes()[:5000])
    page = make_page()
    reasons = {e.path.name: e.broken for e in Library(models_folder).scan() if e.broken}
    assert set(reasons) == {"notes.gguf", "cut-short.gguf"}

    texts = tree_texts(page)
    assert any(t.startswith("Broken files") and "(2)" in t for t in texts)
    for name, reason in reasons.items():
        assert any(name in t and reason in t for t in texts), (name, reason, texts)
    base = tree_item(page, "tiny-base.gguf")
    assert [base.text(c) for c in (1, 2, 7)] == ["base", "↔ tiny-instruct.gguf", "llama"]
    assert base.text(5) == "2k" and base.text(3).endswith("K")
    assert tree_item(page, "tiny-instruct.gguf").text(1) == "instruct"
    assert page.tabs.tabText(0) == "My models (2)"
    assert page.library_empty is False and not page.welcome.isVisible()

    page.library_view.select(models_folder / "notes.gguf")
    details = page.library_view.details.text()
    assert reasons["notes.gguf"].replace("'", "&#x27;") in details or reasons["notes.gguf"] in details
    assert page.library_view.remove_button.isEnabled()  # a broken file in the folder can be removed


def test_import_copy_and_link_then_remove_with_confirmation(page, qtbot, tmp_path, models_folder, tiny_base,
                                                            tiny_instruct, monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    src_base = outside / "my-base.gguf"
    src_base.write_bytes(tiny_base.read_bytes())
    src_instruct = outside / "my-instruct.gguf"
    src_instruct.write_bytes(tiny_instruct.read_bytes())
    junk = outside / "junk.gguf"
    junk.write_text("not a model")
    lib = page.library_view

    with qtbot.waitSignal(page.context.libraryChanged, timeout=WAIT_MS,
                          check_params_cb=lambda es: any(e.file_name == "my-base.gguf" for e in es)):
        lib.import_files([str(src_base)], link=False)
    assert (models_folder / "my-base.gguf").read_bytes() == src_base.read_bytes()  # a copy
    with qtbot.waitSignal(page.context.libraryChanged, timeout=WAIT_MS,
                          check_params_cb=lambda es: any(e.path == str(src_instruct) for e in es)):
        lib.import_files([str(src_instruct)], link=True)
    assert not (models_folder / "my-instruct.gguf").exists()  # linked in place
    qtbot.waitUntil(lambda: len(lib.entries) == 2, timeout=WAIT_MS)
    assert "(linked)" in tree_item(page, "my-instruct.gguf").text(0)

    lib.import_files([str(junk)], link=False)  # refused with the reason, in one line
    qtbot.waitUntil(lambda: page.notice.level == "error", timeout=WAIT_MS)
    assert "junk.gguf" in page.notice.text() and "GGUF" in page.notice.text()
    assert not (models_folder / "junk.gguf").exists()

    # Remove asks first; Cancel keeps the file.
    asked = []
    answer = [QMessageBox.StandardButton.Cancel]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or answer[0])
    assert lib.select(models_folder / "my-base.gguf")
    lib.remove_button.click()
    assert "Delete my-base.gguf" in asked[-1]
    assert (models_folder / "my-base.gguf").exists()

    answer[0] = QMessageBox.StandardButton.Yes
    with qtbot.waitSignal(page.context.libraryChanged, timeout=WAIT_MS,
                          check_params_cb=lambda es: not any(e.file_name == "my-base.gguf" for e in es)):
        lib.remove_button.click()
    assert not (models_folder / "my-base.gguf").exists()

    # Removing a linked model only unlists it; its file stays where it was.
    qtbot.waitUntil(lambda: lib.select(src_instruct), timeout=WAIT_MS)
    lib.remove_button.click()
    assert "stays at" in asked[-1]
    qtbot.waitUntil(lambda: not any(e.path == src_instruct for e in lib.entries), timeout=WAIT_MS)
    assert src_instruct.exists()


# --- offline ------------------------------------------------------------------------------------------


def test_offline_mode_disables_search_and_downloads_with_the_reason(page, qtbot, hub):
    page.context.update_settings(offline=True)
    view = page.search_view
    assert not view.query.isEnabled() and not view.search_button.isEnabled()
    assert "Offline" in view.query.placeholderText() and "Offline mode" in view.search_button.toolTip()
    assert "Offline mode is on" in page.notice.text()
    action = page.notice_button
    assert not action.isHidden() and action.text() == "Settings…"
    action.click()  # the way out is one click away
    dialog = page.findChild(QLineEdit, "hfTokenEdit").window()
    assert dialog.isVisible()
    dialog.close()
    button = page.catalog_view.action_button("smollm2-135m")
    assert not button.isEnabled() and "Offline mode" in button.toolTip()
    assert not page.welcome.button.isEnabled()
    assert page.download_files([(REPO, "tiny-base-Q8_0.gguf")]) == []
    view.search()  # even if called, nothing leaves the machine
    view.open_repo(REPO)
    qtbot.wait(200)
    assert hub.requests == []

    page.context.update_settings(offline=False)
    assert view.query.isEnabled() and view.search_button.isEnabled()
    assert page.catalog_view.action_button("smollm2-135m").isEnabled()
    assert page.notice.text() == "" and page.notice_button.isHidden()


def test_in_the_window_an_import_reaches_the_panes_pickers_and_the_token_field_is_the_windows(
        qtbot, window, tmp_path, tiny_base):
    from PySide6.QtWidgets import QComboBox

    window.show_page("models")
    page = window.models_page
    qtbot.waitUntil(lambda: page.library_empty is not None and page.center.is_ready, timeout=WAIT_MS)
    src = tmp_path / "picked-up.gguf"
    src.write_bytes(tiny_base.read_bytes())
    page.library_view.import_files([str(src)], link=False)
    picker = window.completion_pane.findChild(QComboBox, "modelPicker")
    qtbot.waitUntil(lambda: any("picked-up.gguf" in picker.itemText(i) for i in range(picker.count())),
                    timeout=WAIT_MS)

    dialog = page.open_token_settings()
    assert dialog.parent() is window  # the window's own Settings dialog, with the token field focused
    assert dialog.findChild(QLineEdit, "hfTokenEdit") is not None
    dialog.close()


def test_models_found_in_the_hf_cache_are_listed_in_place_and_a_new_models_folder_is_followed(
        page, qtbot, hub, tandem_home, tmp_path, tiny_instruct):
    # huggingface_hub's cache layout: HF_HOME/hub/models--owner--name/snapshots/<commit>/<file>
    snap = tmp_path / "hf-home" / "hub" / "models--someone--Cached-GGUF" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (snap / "cached-instruct.gguf").write_bytes(tiny_instruct.read_bytes())
    page.library_view.rescan_button.click()
    qtbot.waitUntil(lambda: any(e.source == "hf-cache" for e in page.library_view.entries), timeout=WAIT_MS)
    assert any(t.startswith("Found in the Hugging Face cache") and t.endswith("(1)") for t in tree_texts(page))
    page.library_view.select(snap / "cached-instruct.gguf")
    assert not page.library_view.remove_button.isEnabled()  # not ours to delete
    assert "Hugging Face cache" in page.library_view.remove_button.toolTip()

    new_folder = tmp_path / "new-models"
    page.context.update_settings(models_dir=str(new_folder))
    qtbot.waitUntil(lambda: str(new_folder) in page.library_view.folder_label.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: page.center.is_ready, timeout=WAIT_MS)
    download_id = page.download_files([(REPO, "tiny-instruct-Q8_0.gguf")])[0]
    qtbot.waitUntil(lambda: page.center.state(download_id).kind == "done", timeout=WAIT_MS)
    assert (new_folder / "tiny-instruct-Q8_0.gguf").exists()
    qtbot.waitUntil(lambda: any(e.path.parent == new_folder for e in page.library_view.entries), timeout=WAIT_MS)

"""Start the desktop app: ``tandem`` with no arguments, or ``python -m desktop``.

``create_main_window()`` builds the whole window without entering the event loop (tests, embedding);
``main()`` runs the app. The start path imports Qt and Tandem's own light modules only: llama_cpp lives in
the model worker processes and huggingface_hub is imported when the Models page first needs it.
"""

from __future__ import annotations

import logging
import sys

from desktop.core import paths


def create_main_window(context=None):
    """The main window with its pages, on a fresh AppContext (settings and history from TANDEM_HOME).

    A QApplication must exist. The library scan starts at once, off the GUI thread.
    """
    from desktop.ui.main_window import MainWindow
    from desktop.ui.runtime.context import AppContext
    from desktop.ui.widgets.theme import apply_theme

    context = context or AppContext()
    apply_theme(context.settings.theme)
    window = MainWindow(context)
    context.refresh_library()
    context.remote.refresh()
    return window


def _install_excepthook() -> None:
    """A bug in a slot must not kill the app: log it, tell the person once, keep running."""
    from desktop.core.logs import log_file, setup_logging

    log = setup_logging()

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.error("unhandled exception", exc_info=(exc_type, exc, tb))
        try:
            from PySide6.QtWidgets import QApplication, QMessageBox

            if QApplication.instance() is not None:
                QMessageBox.warning(None, "Tandem", f"Something went wrong: {exc}\n\nThe app keeps running; "
                                    f"details are in {log_file()}.")
        except Exception:  # the dialog itself failed (no display, Qt shutting down): the log has it all
            log.exception("could not show the error dialog")

    sys.excepthook = hook


def create_application(argv: list[str] | None = None):
    """The QApplication, named and iconed as the installed app (one is made if none exists)."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from desktop import __version__

    app = QApplication.instance()
    if app is not None:
        return app
    app = QApplication(list(sys.argv if argv is None else argv) or ["tandem"])
    # A background thread running Python (a GGUF header walk, a download's bookkeeping) keeps the GIL for up
    # to the switch interval each time the GUI thread asks for it, and painting one frame asks many times:
    # at CPython's 5 ms the first-run bench saw 150-300 ms frames while a model file was checked. 1 ms keeps
    # the GUI thread's waits short; the background work gets the same share of time.
    sys.setswitchinterval(0.001)
    from desktop.ui.runtime import collector

    collector.install(app)  # garbage collection on the GUI thread only (see desktop/ui/runtime/collector.py)
    app.setApplicationName(paths.APP_NAME)
    app.setApplicationDisplayName(paths.APP_NAME)
    app.setOrganizationName(paths.APP_AUTHOR)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName(paths.APP_ID)
    icons = paths.resources_dir() / "icons"
    for candidate in ("tandem.svg", "tandem-128.png"):
        if (icons / candidate).is_file():
            app.setWindowIcon(QIcon(str(icons / candidate)))
            break
    return app


def probe_main_window() -> dict:
    """Open the main window, note what a packager must check, close it again (``tandem selftest``)."""
    from PySide6.QtGui import QImageReader

    app = create_application()
    facts: dict = {"platform": app.platformName(),
                   "image_formats": sorted({bytes(f.data()).decode() for f in QImageReader.supportedImageFormats()})}
    window = create_main_window()
    try:
        window.show()
        app.processEvents()
        facts.update(visible=window.isVisible(), title=window.windowTitle(),
                     icon_renders=not window.windowIcon().pixmap(64, 64).isNull(),
                     size=(window.size().width(), window.size().height()))
    finally:
        window.close()
        window.deleteLater()
        app.processEvents()
    facts["closed"] = not window.isVisible()
    return facts


def main(argv: list[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen build's engine workers re-enter here
    from desktop import __version__
    from desktop.core.errors import QtPlatformError
    from desktop.core.qt_platform import check_qt_platform

    try:  # before Qt: its own failure is an abort that names neither the library nor the package
        check_qt_platform()
    except QtPlatformError as exc:
        sys.stderr.write(f"tandem: error: {exc}\n")
        return 1
    app = create_application(argv)
    _install_excepthook()
    logging.getLogger("tandem").info("starting Tandem %s", __version__)
    try:
        window = create_main_window()
    except Exception as exc:  # e.g. an unreadable history file: say so instead of a traceback
        from PySide6.QtWidgets import QMessageBox

        from desktop.core.logs import log_exception

        log_exception("could not start")
        QMessageBox.critical(None, "Tandem can't start", str(exc))
        return 1
    from desktop.ui.runtime import collector

    collector.freeze_after_start()
    window.show()
    return app.exec()

"""The book as a reader uses it: every notebook with widgets, run in JupyterLab in a real Chromium.

For each notebook that has a widget (discovered from its saved outputs and its source, so new
notebooks are tested without listing them here), the test opens it in JupyterLab, runs
Run -> "Restart Kernel and Run All Cells", waits until ``/api/sessions`` reports the kernel idle,
checks that no cell shows an error, and then moves every slider, dropdown and checkbox of every
panel and checks that the panel's output is there and changes, and that no control's label is
cut. ``tests/test_widgets.py`` reads ``panel.result`` in Python; only a browser sees whether the
result is *displayed* (issue 14).

The notebooks are copied to a temporary folder first (JupyterLab would otherwise autosave the
re-run outputs over the committed ones). Screenshots go to ``var/browser-screenshots/``
(ignored by git) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatdesign.services import CHROMIUM_ARGS, free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SCREENSHOTS = ROOT / "var" / "browser-screenshots"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
RUN_ALL_TIMEOUT_S = 90.0
OUTPUT_CHANGE_TIMEOUT_S = 20.0
CONTROLS = ".widget-slider, .widget-hslider, .widget-dropdown, .widget-checkbox"

# User settings for this private JupyterLab: no autosave (belt and braces: the folder is a copy),
# every cell in the DOM (the default windowing keeps far-away cells out of it), no news prompt.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _has_widgets(path: Path) -> bool:
    """A notebook has widgets if a saved output is a widget view or a code cell builds a panel."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        if any(WIDGET_MIME in output.get("data", {}) for output in cell.get("outputs", [])):
            return True
        source = "".join(cell["source"])
        if re.search(r"\binteract(ive)?\(|_panel\(", source):
            return True
    return False


WIDGET_NOTEBOOKS = [p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")) if _has_widgets(p)]


@dataclass(frozen=True)
class Lab:
    """A running private JupyterLab serving a copy of the notebooks."""

    base_url: str
    token: str

    def sessions(self) -> list[dict[str, object]]:
        with urllib.request.urlopen(f"{self.base_url}/api/sessions?token={self.token}", timeout=5) as response:
            answer: list[dict[str, object]] = json.load(response)
            return answer


def _wait_for_lab(lab: Lab, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            lab.sessions()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start:\n{log.read_text(errors='replace')[-3000:]}") from None
            time.sleep(0.25)


@contextmanager
def running_lab() -> Iterator[Lab]:
    """JupyterLab on a free loopback port with a token, its own runtime, settings and workspace."""
    workdir = Path(tempfile.mkdtemp(prefix="chatdesign-lab-"))
    book = workdir / "book"
    (book / "notebooks").mkdir(parents=True)
    for path in NOTEBOOKS.glob("*.ipynb"):
        shutil.copy2(path, book / "notebooks" / path.name)
    for name in ("data",):  # what the notebooks read, relative to the repository
        os.symlink(ROOT / name, book / name)
    settings = workdir / "settings"
    for relative, values in LAB_SETTINGS.items():
        target = settings / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values), encoding="utf-8")
    token = os.urandom(16).hex()
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"),
    }
    log = workdir / "lab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={book}",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
        "--LabApp.news_url=", "--LabApp.expose_app_in_browser=True",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=book, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    lab = Lab(f"http://127.0.0.1:{port}", token)
    try:
        _wait_for_lab(lab, process, log)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A private JupyterLab for this module's tests."""
    with running_lab() as server:
        yield server


@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[object]:
    """Headless Debian Chromium driven by the pinned Playwright."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_executable, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


def _kernel_idle(lab: Lab, name: str) -> bool:
    for session in lab.sessions():
        if str(session.get("path", "")).endswith(name):
            kernel = session.get("kernel") or {}
            return isinstance(kernel, dict) and kernel.get("execution_state") == "idle"
    return False


def _run_all(page: object, lab: Lab, name: str) -> None:
    """Run -> Restart Kernel and Run All Cells, confirm, and wait until every cell has run.

    The saved outputs are cleared first (Edit -> Clear Outputs of All Cells): their numbered
    prompts would otherwise look finished before the run starts.
    """
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Edit$")).click()  # type: ignore[attr-defined]
    page.locator(".lm-Menu-itemLabel", has_text="Clear Outputs of All Cells").click()  # type: ignore[attr-defined]
    page.wait_for_function(  # type: ignore[attr-defined]
        "() => !Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))"
        ".some(p => /\\[\\d+\\]/.test(p.textContent))"
    )
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()  # type: ignore[attr-defined]
    page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").click()  # type: ignore[attr-defined]
    page.locator(".jp-Dialog-button.jp-mod-accept").click()  # type: ignore[attr-defined]
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    while True:
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()  # type: ignore[attr-defined]
        finished = prompts and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts)
        if finished and _kernel_idle(lab, name):
            return
        if time.monotonic() > deadline:
            pending = [p for p in prompts if not re.fullmatch(r"\[\d+\]:", p.strip())]
            pytest.fail(f"{name}: cells still not run after {RUN_ALL_TIMEOUT_S:g} s: {pending[:5]}")
        time.sleep(0.5)


WIDGET_RENDERER_READY_JS = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    return Boolean(panel && panel.content && panel.content.rendermime &&
                   panel.content.rendermime.mimeTypes.includes('application/vnd.jupyter.widget-view+json'));
}"""
"""True once the open notebook can render widgets: the widget manager registers its renderer with
each notebook after the app has started, and a run before that shows widgets as plain text."""

_PANEL_OUTPUT_JS = """cell => Array.from(cell.querySelectorAll('.widget-output, .widget-html-content'))
    .map(node => node.innerText + Array.from(node.querySelectorAll('img')).map(img => img.src.length + ':' +
         img.src.slice(-64)).join(' '))
    .join('\\n')"""


def _panel_output(cell: object) -> str:
    text: str = cell.evaluate(_PANEL_OUTPUT_JS)  # type: ignore[attr-defined]
    return text.strip()


def _wait_for_output(cell: object, differs_from: str | None, what: str) -> str:
    deadline = time.monotonic() + OUTPUT_CHANGE_TIMEOUT_S
    while True:
        text = _panel_output(cell)
        if text and text != differs_from and "Traceback" not in text:
            return text
        if time.monotonic() > deadline:
            state = "shows an error" if "Traceback" in text else "is empty" if not text else "did not change"
            pytest.fail(f"{what}: the panel's output {state} after {OUTPUT_CHANGE_TIMEOUT_S:g} s:\n{text[:800]}")
        time.sleep(0.2)


def _control_label(control: object) -> str:
    labels = control.locator("label.widget-label").all_inner_texts()  # type: ignore[attr-defined]
    return labels[0].strip() if labels else "(no description)"


def _label_is_cut(control: object) -> bool:
    """True when the description does not fit its box (the reader sees "herd_wind…")."""
    label = control.locator("label.widget-label").first  # type: ignore[attr-defined]
    if not label.count():
        return False
    cut: bool = label.evaluate("l => l.scrollWidth > l.clientWidth + 1")
    return cut


def _move(control: object) -> None:
    """Move one control to a different value the way a reader would (keyboard, select, click)."""
    classes = control.get_attribute("class") or ""  # type: ignore[attr-defined]
    if "widget-dropdown" in classes:
        select = control.locator("select")  # type: ignore[attr-defined]
        options = select.locator("option").all_inner_texts()
        current = select.evaluate("s => s.selectedIndex")
        select.select_option(index=(current + 1) % len(options))
    elif "widget-checkbox" in classes:
        control.locator("input[type=checkbox]").click()  # type: ignore[attr-defined]
    else:
        readout = control.locator(".widget-readout")  # type: ignore[attr-defined]
        before = readout.inner_text() if readout.count() else None
        handle = control.locator(".noUi-handle").first  # type: ignore[attr-defined]
        handle.focus()
        handle.press("End")
        if readout.count() and readout.inner_text() == before:  # it was at the maximum already
            handle.press("Home")


def _widgets_shown_as_text(page: object) -> list[str]:
    """Widget reprs rendered as plain text ("interactive(children=(...") instead of as widgets."""
    texts = page.locator('.jp-OutputArea-output[data-mime-type="text/plain"]').all_inner_texts()  # type: ignore[attr-defined]
    return [t[:80] for t in texts if re.match(r"^\w+\(children=\(", t.strip())]


def _check_no_errors(page: object, name: str) -> None:
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')  # type: ignore[attr-defined]
    texts = errors.all_inner_texts()
    assert not texts, f"{name}: a cell shows an error or writes to stderr:\n" + "\n---\n".join(t[:1500] for t in texts)


@pytest.fixture(scope="module")
def lab_page(lab: Lab, browser: object) -> Iterator[object]:
    """One JupyterLab page for all notebooks (loading the app once saves most of the time)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{lab.base_url}/lab?token={lab.token}&reset")
    page.wait_for_function("window.jupyterapp !== undefined", timeout=90_000)
    page.evaluate("async () => { await window.jupyterapp.restored; }")
    try:
        yield page
    finally:
        context.close()


_OPEN_JS = """async path => {
    const app = window.jupyterapp;
    const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
    await panel.context.ready;
    await panel.sessionContext.ready;
    app.shell.activateById(panel.id);
}"""

_CLOSE_JS = """async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    if (panel && panel.sessionContext) { await panel.sessionContext.shutdown(); }
    if (panel) { panel.dispose(); }
}"""


@pytest.mark.parametrize("path", WIDGET_NOTEBOOKS, ids=lambda p: p.stem)
def test_every_panel_displays_and_responds(lab: Lab, lab_page: object, path: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = lab_page
    try:
        page.evaluate(_OPEN_JS, f"notebooks/{path.name}")  # type: ignore[attr-defined]
        # The widget manager attaches its renderer to each notebook after it opens; a run before
        # that shows every widget as its text repr.
        page.wait_for_function(WIDGET_RENDERER_READY_JS, timeout=60_000)  # type: ignore[attr-defined]
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=60_000)  # type: ignore[attr-defined]
        _run_all(page, lab, path.name)
        if _widgets_shown_as_text(page):
            # Seen once on a loaded machine, the widget manager late for the first run: run once
            # more, and fail if it happens again.
            _run_all(page, lab, path.name)
            as_text = _widgets_shown_as_text(page)
            assert not as_text, f"{path.name}: widgets shown as text: {as_text}"
        _check_no_errors(page, path.name)
        cells = page.locator(".jp-CodeCell").filter(has=page.locator(CONTROLS))  # type: ignore[attr-defined]
        assert cells.count() > 0, f"{path.name}: no panel with a slider, dropdown or checkbox was displayed"
        cut_labels = []
        for index in range(cells.count()):
            cell = cells.nth(index)
            cell.scroll_into_view_if_needed()
            where = f"{path.name}, panel {index + 1}"
            shown = _wait_for_output(cell, None, where)
            controls = cell.locator(CONTROLS)
            for number in range(controls.count()):
                control = controls.nth(number)
                label = _control_label(control)
                if _label_is_cut(control):
                    cut_labels.append(label)
                _move(control)
                try:
                    shown = _wait_for_output(cell, shown, f"{where}, control {label!r}")
                except BaseException:
                    cell.screenshot(path=str(SCREENSHOTS / f"{path.stem}-panel{index + 1}-failure.png"))
                    raise
            cell.screenshot(path=str(SCREENSHOTS / f"{path.stem}-panel{index + 1}.png"))
        _check_no_errors(page, path.name)
        assert not cut_labels, (
            f"{path.name}: labels cut off, a reader sees '…': {cut_labels}; give the control a description in "
            'words with units and style={"description_width": "initial"}'
        )
    except BaseException:
        page.screenshot(path=str(SCREENSHOTS / f"{path.stem}-failure.png"))  # type: ignore[attr-defined]
        raise
    finally:
        page.evaluate(_CLOSE_JS)  # type: ignore[attr-defined]

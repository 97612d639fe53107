#!/usr/bin/python3
"""Drives classic Jupyter Notebook in headless Chromium (selenium) against the "TypeScript (remote)" kernel.

  browser-driver.py check               exits 0 when notebook, selenium, chromium and chromedriver are here
  browser-driver.py run WORKDIR ARTIFACTS
      starts `jupyter notebook` on a free loopback port with a token in WORKDIR (the kernelspec is found through the
      JUPYTER_* environment the caller set), opens a new notebook on the tslab-remote kernel, runs a %remote cell
      that prints for a few seconds, interrupts an endless %remote loop from the toolbar, runs one more cell, and
      prints what the page showed as JSON. A screenshot and the page's HTML as it was last go to ARTIFACTS. The server
      and the browser are always ended.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

PRINTS = (
    "%remote (async () => {\n"
    "  for (let i = 1; i <= 4; i++) {\n"
    "    console.log(`step ${i}`)\n"
    "    await new Promise((r) => setTimeout(r, 1000))\n"
    "  }\n"
    "  return 'done'\n"
    "})()"
)
ENDLESS = (
    "%remote (async () => {\n"
    "  for (let i = 0; ; i++) {\n"
    "    console.log(`tick ${i}`)\n"
    "    await new Promise((r) => setTimeout(r, 300))\n"
    "  }\n"
    "})()"
)
AFTER = "6 * 7"


def check():
    missing = []
    try:
        import notebook  # noqa: F401
    except ImportError:
        missing.append("jupyter-notebook")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    if not os.path.exists(CHROMIUM):
        missing.append("chromium")
    if not os.path.exists(CHROMEDRIVER):
        missing.append("chromium-driver")
    if missing:
        sys.stderr.write("missing Debian packages: %s\n" % " ".join(missing))
        return 1
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, condition, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError("timed out after %d s waiting for %s" % (timeout, what))


def start_server(workdir, runtime):
    port = free_port()
    token = os.urandom(16).hex()
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=runtime)
    server = subprocess.Popen(
        [sys.executable, "-m", "notebook", "--no-browser", "--ip=127.0.0.1", "--port=%d" % port, "--port-retries=0",
         "--NotebookApp.token=" + token, "--notebook-dir=" + workdir] + (["--allow-root"] if os.getuid() == 0 else []),
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(runtime, "server.log"), "w"), start_new_session=True,
    )
    base = "http://127.0.0.1:%d" % port

    def up():
        if server.poll() is not None:
            raise RuntimeError("jupyter notebook exited with %s; its log: %s" % (server.returncode, open(os.path.join(runtime, "server.log")).read()))
        try:
            urllib.request.urlopen(base + "/api/status?token=" + token, timeout=2).read()
            return True
        except Exception:
            return False

    wait_until("the notebook server", up, 60)
    return server, base, token


def new_notebook(base, token, name):
    body = {"type": "notebook", "content": {
        "cells": [], "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "tslab-remote", "display_name": "TypeScript (remote)", "language": "typescript"}}}}
    request = urllib.request.Request(base + "/api/contents/%s?token=%s" % (name, token), data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def start_browser(profile):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,1600", "--user-data-dir=" + profile):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Page:
    def __init__(self, browser):
        self.browser = browser

    def js(self, script, *args):
        return self.browser.execute_script(script, *args)

    def add_cell(self, code):
        return self.js(
            "const nb = Jupyter.notebook; const cell = nb.insert_cell_at_bottom('code'); cell.set_text(arguments[0]);"
            "nb.select(nb.find_cell_index(cell)); return nb.find_cell_index(cell);", code)

    def click(self, action):
        self.browser.find_element("css selector", 'button[data-jupyter-action="jupyter-notebook:%s"]' % action).click()

    def run(self, index):
        self.js("Jupyter.notebook.select(arguments[0])", index)
        self.click("run-cell-and-select-next")

    def prompt(self, index):
        return self.js("return Jupyter.notebook.get_cell(arguments[0]).element.find('.input_prompt').text()", index)

    def running(self, index):
        return "*" in self.prompt(index)

    def output(self, index):
        return self.js("return Jupyter.notebook.get_cell(arguments[0]).element.find('.output_area').toArray().map((e) => e.innerText).join('\\n')", index)

    def errors(self, index):
        return self.js("return Jupyter.notebook.get_cell(arguments[0]).output_area.outputs.filter((o) => o.output_type === 'error').map((o) => o.ename + ': ' + o.evalue)", index)


def drive(page, base, token):
    page.browser.get(base + "/notebooks/browser.ipynb?token=" + token)
    wait_until("the notebook page", lambda: page.js("return !!(window.Jupyter && Jupyter.notebook && Jupyter.notebook._fully_loaded)"), 60)
    wait_until("the kernel to be ready", lambda: page.js(
        "const k = Jupyter.notebook.kernel; return !!(k && k.is_connected() && k.name === 'tslab-remote' && Jupyter.notebook.kernel_busy === false)"), 90)
    shown = {}

    prints = page.add_cell(PRINTS)
    page.run(prints)
    # The lines appear while the cell runs: seen with the prompt still [*], before the last one.
    wait_until("'step 2' while the printing cell runs", lambda: "step 2" in page.output(prints) or not page.running(prints), 120)
    shown["while_running"] = {"running": page.running(prints), "output": page.output(prints)}
    wait_until("the printing cell to end", lambda: not page.running(prints), 120)
    shown["prints"] = {"prompt": page.prompt(prints), "output": page.output(prints), "errors": page.errors(prints)}

    endless = page.add_cell(ENDLESS)
    page.run(endless)
    wait_until("'tick 2' from the endless cell", lambda: "tick 2" in page.output(endless), 120)
    page.click("interrupt-kernel")
    wait_until("the interrupted cell to end", lambda: not page.running(endless), 60)
    shown["endless"] = {"prompt": page.prompt(endless), "output": page.output(endless), "errors": page.errors(endless)}

    after = page.add_cell(AFTER)
    page.run(after)
    wait_until("the cell after the interrupt to end", lambda: not page.running(after), 60)
    shown["after"] = {"prompt": page.prompt(after), "output": page.output(after), "errors": page.errors(after)}
    return shown


def save_artifacts(browser, artifacts):
    os.makedirs(artifacts, exist_ok=True)
    browser.save_screenshot(os.path.join(artifacts, "page.png"))
    with open(os.path.join(artifacts, "page.html"), "w") as f:
        f.write(browser.page_source)


def run(args):
    workdir, artifacts = args
    scratch = tempfile.mkdtemp(prefix="browser-driver-")
    server = browser = None
    try:
        server, base, token = start_server(workdir, scratch)
        new_notebook(base, token, "browser.ipynb")
        browser = start_browser(os.path.join(scratch, "profile"))
        try:
            shown = drive(Page(browser), base, token)
        finally:
            save_artifacts(browser, artifacts)  # the caller keeps them when the run or its checks fail
        print(json.dumps(shown))
        return 0
    except Exception:
        traceback.print_exc()
        if os.path.exists(os.path.join(scratch, "server.log")):
            sys.stderr.write("notebook server log (tail):\n" + open(os.path.join(scratch, "server.log")).read()[-4000:])
        return 1
    finally:
        if browser is not None:
            browser.quit()
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)  # the server, in a session of its own, shuts its kernels down
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv):
    if argv[:1] == ["check"]:
        return check()
    if argv[:1] == ["run"] and len(argv) == 3:
        return run(argv[1:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

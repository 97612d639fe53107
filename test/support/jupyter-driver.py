#!/usr/bin/python3
"""Drives the tslab-remote kernel through a real Jupyter client (jupyter_client, nbclient), for the kernel tests.

Run with Debian's /usr/bin/python3 (apt-get install jupyter-client python3-nbclient jupyter-nbconvert), with
JUPYTER_PATH / JUPYTER_DATA_DIR / JUPYTER_RUNTIME_DIR pointing at a directory holding the kernelspec.

  jupyter-driver.py check
      prints the versions of jupyter_client and nbclient (exit 0) or why they are missing (exit 3)
  jupyter-driver.py notebook IN.ipynb OUT.ipynb [--allow-errors] [--timeout SECONDS] [--start-at TEXT] [--kill-after TEXT]
      executes the notebook with nbclient (kernel tslab-remote, in the notebook's directory) and writes OUT;
      exit 1 with the error on stderr when a cell fails that may not. --start-at skips the cells before the first
      that starts with TEXT; --kill-after SIGKILLs the kernel once the first cell starting with TEXT has run (the
      rest is not run), as a crash or a killed kernel would end it
  jupyter-driver.py session SCRIPT.json
      starts the kernel with jupyter_client and plays the script: a list of steps, each
        {"send": [{"code": "...", "stop_on_error": true, "silent": false, "store_history": true}, ...],
         "interrupt_after": SECONDS or [SECONDS, ...] (optional: KernelManager.interrupt_kernel, i.e. SIGINT to the
                            process group, that long after the requests were sent),
         "interrupt_on_output": "TEXT" (optional: count interrupt_after from the first stream output holding TEXT
                            instead, so an interrupt lands while the code runs however long the type check took)}
      every request of a step is sent at once, then all their replies and iopub messages are collected, and the
      step waits for its interrupts to have been sent. A step with interrupts and nothing to send interrupts the
      idle kernel, then gives it half a second to handle them; it records [].
      A step {"complete": {"code": "...", "cursor_pos": N}} or {"inspect": {...}} sends a complete_request or an
      inspect_request and records its reply as [{"code", "reply"}].
      Prints JSON: [[{"code", "reply", "iopub": [{"msg_type", "content"}], "elapsed_ms"}, ...], ...]
"""

import json
import os
import sys
import threading
import time


def check():
    try:
        import jupyter_client
        import nbclient
        import nbformat
    except ImportError as error:
        print("missing: %s (install with: apt-get install -y jupyter-client python3-nbclient jupyter-nbconvert)" % error)
        return 3
    print(json.dumps({"jupyter_client": jupyter_client.__version__, "nbclient": nbclient.__version__, "nbformat": nbformat.__version__}))
    return 0


def notebook(args):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    source, target = args[0], args[1]
    allow_errors = "--allow-errors" in args
    timeout = 300
    if "--timeout" in args:
        timeout = int(args[args.index("--timeout") + 1])
    start_at = args[args.index("--start-at") + 1] if "--start-at" in args else None
    kill_after = args[args.index("--kill-after") + 1] if "--kill-after" in args else None
    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="tslab-remote",
        timeout=timeout,
        allow_errors=allow_errors,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(source))}},
    )
    status = 0
    try:
        if start_at is None and kill_after is None:
            client.execute()
        else:
            run_cells(client, nb, start_at, kill_after)
    except CellExecutionError as error:
        sys.stderr.write(str(error) + "\n")
        status = 1
    nbformat.write(nb, target)
    return status


def run_cells(client, nb, start_at, kill_after):
    """Runs the cells from the first starting with start_at; SIGKILLs the kernel after the first with kill_after."""
    import signal

    def starts(cell, text):
        return text is not None and cell.source.lstrip().startswith(text)

    started = start_at is None
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            started = started or starts(cell, start_at)
            if not started:
                continue
            client.execute_cell(cell, index)
            if starts(cell, kill_after):
                os.kill(client.km.provisioner.pid, signal.SIGKILL)
                return


def session(args):
    from jupyter_client.manager import KernelManager

    with open(args[0]) as f:
        script = json.load(f)
    km = KernelManager(kernel_name="tslab-remote")
    km.start_kernel(cwd=script.get("cwd") or os.getcwd())
    kc = km.client()
    kc.start_channels()
    out = []
    try:
        kc.wait_for_ready(timeout=60)
        for step in script["steps"]:
            if "complete" in step or "inspect" in step:
                kind = "complete" if "complete" in step else "inspect"
                request = step[kind]
                if kind == "complete":
                    msg_id = kc.complete(request["code"], request["cursor_pos"])
                else:
                    msg_id = kc.inspect(request["code"], request["cursor_pos"])
                reply = None
                deadline = time.time() + 60
                while reply is None and time.time() < deadline:
                    msg = kc.get_shell_msg(timeout=60)
                    if msg["parent_header"].get("msg_id") == msg_id:
                        reply = msg["content"]
                out.append([{"code": request["code"], "reply": reply, "iopub": [], "elapsed_ms": None}])
                continue
            started = {}
            ids = []
            for request in step.get("send", []):
                msg_id = kc.execute(
                    request["code"],
                    silent=request.get("silent", False),
                    store_history=request.get("store_history", True),
                    stop_on_error=request.get("stop_on_error", True),
                )
                started[msg_id] = time.time()
                ids.append(msg_id)
            after = step.get("interrupt_after", [])
            timers = [threading.Timer(seconds, km.interrupt_kernel) for seconds in (after if isinstance(after, list) else [after])]
            trigger = step.get("interrupt_on_output")
            if not trigger:
                for timer in timers:
                    timer.start()
            replies = {}
            elapsed = {}
            iopub = {msg_id: [] for msg_id in ids}
            idle = set()
            deadline = time.time() + step.get("timeout", 120)
            while (len(replies) < len(ids) or len(idle) < len(ids) or any(t.is_alive() for t in timers)) and time.time() < deadline:
                if len(replies) < len(ids):
                    try:
                        msg = kc.get_shell_msg(timeout=0.05)
                        parent = msg["parent_header"].get("msg_id")
                        if parent in started and msg["msg_type"] == "execute_reply":
                            replies[parent] = msg["content"]
                            elapsed[parent] = (time.time() - started[parent]) * 1000
                    except Exception:
                        pass
                while True:
                    try:
                        msg = kc.get_iopub_msg(timeout=0.05)
                    except Exception:
                        break
                    parent = msg["parent_header"].get("msg_id")
                    if parent not in iopub:
                        continue
                    iopub[parent].append({"msg_type": msg["msg_type"], "content": msg["content"]})
                    if trigger and msg["msg_type"] == "stream" and trigger in msg["content"].get("text", ""):
                        trigger = None
                        for timer in timers:
                            timer.start()
                    if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                        idle.add(parent)
            for timer in timers:
                timer.cancel()
            if timers and not ids:
                time.sleep(0.5)
            out.append([
                {"code": request["code"], "reply": replies.get(msg_id), "iopub": iopub[msg_id], "elapsed_ms": elapsed.get(msg_id)}
                for request, msg_id in zip(step.get("send", []), ids)
            ])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    print(json.dumps(out, default=str))
    return 0


def protocol(args):
    """history, comm_info and comm requests, then an orderly shutdown; prints each request's reply and iopub."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="tslab-remote")
    km.start_kernel(cwd=os.getcwd())
    kc = km.client()
    kc.start_channels()
    out = {}
    try:
        kc.wait_for_ready(timeout=60)
        comm = {"comm_id": "c0ffee", "data": {}}
        sent = {
            "history_request": kc.history(hist_access_type="tail", n=10),
            "comm_info_request": kc.comm_info(),
        }
        for msg_type, content in (
            ("comm_open", dict(comm, target_name="jupyter.widget")),
            ("comm_msg", comm),
            ("comm_close", comm),
        ):
            msg = kc.session.msg(msg_type, content)
            kc.shell_channel.send(msg)
            sent[msg_type] = msg["header"]["msg_id"]
        by_id = {msg_id: {"reply": None, "iopub": []} for msg_id in sent.values()}
        idle = set()
        deadline = time.time() + 60
        answered = lambda: all(by_id[sent[t]]["reply"] for t in ("history_request", "comm_info_request"))
        while (len(idle) < len(sent) or not answered()) and time.time() < deadline:
            try:
                msg = kc.get_shell_msg(timeout=0.05)
                parent = msg["parent_header"].get("msg_id")
                if parent in by_id:
                    by_id[parent]["reply"] = {"msg_type": msg["msg_type"], "content": msg["content"]}
            except Exception:
                pass
            while True:
                try:
                    msg = kc.get_iopub_msg(timeout=0.05)
                except Exception:
                    break
                parent = msg["parent_header"].get("msg_id")
                if parent in by_id:
                    by_id[parent]["iopub"].append({"msg_type": msg["msg_type"], "content": msg["content"]})
                    if msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle":
                        idle.add(parent)
        out = {msg_type: by_id[msg_id] for msg_type, msg_id in sent.items()}
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    print(json.dumps(out, default=str))
    return 0


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    command, args = argv[0], argv[1:]
    if command == "check":
        return check()
    if command == "notebook":
        return notebook(args)
    if command == "session":
        return session(args)
    if command == "protocol":
        return protocol(args)
    sys.stderr.write("unknown command %s\n" % command)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

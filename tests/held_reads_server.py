"""`qa serve` with a gate in front of the reader, so a test can hold requests inside the handler.

    python -m tests.held_reads_server serve --index DIR --port PORT ...   (the arguments of `qa serve`)

The test drives the gate through stdin, one command a line, and reads its replies on stdout (lines
starting "gate: "; the server's own lines may come between them):
    hold     from now on each read says "gate: held" and waits; replies "gate: holding"
    release  the held reads and any later ones go on; replies "gate: released"
Before "hold" the gate is open, so the server loads and warms up its models as usual.
"""

from __future__ import annotations

import runpy
import sys
import threading

from qa.reading import ExtractiveReader


def _say(message: str) -> None:
    sys.stdout.write(f"gate: {message}\n")  # one write: the server's log lines cannot split it
    sys.stdout.flush()


def _obey(holding: threading.Event, released: threading.Event) -> None:
    for line in sys.stdin:
        command = line.strip()
        if command == "hold":
            holding.set()
            _say("holding")
        elif command == "release":
            released.set()
            _say("released")
        else:
            _say(f"unknown command {command!r}")


def main() -> None:
    holding, released = threading.Event(), threading.Event()
    read = ExtractiveReader.read

    def held_read(self, question, passages, top_n):
        if holding.is_set() and not released.is_set():
            _say("held")
            released.wait()
        return read(self, question, passages, top_n)

    ExtractiveReader.read = held_read
    threading.Thread(target=_obey, args=(holding, released), daemon=True).start()
    runpy.run_module("qa.cli", run_name="__main__", alter_sys=True)  # the rest of argv is qa's


if __name__ == "__main__":
    main()

"""Serve the API from forked children of one process that loads the models once.

Used by the kill -9 tests: starting `qa serve` costs seconds of model loading, a fork costs
milliseconds, and each child runs the same app (`create_app`) under uvicorn as `qa serve` does.

    python -m tests.forked_server        (settings from the QA_* variables)

One line per message. It prints "loaded" once; then for each "serve PORT" read from stdin it
forks a child serving on 127.0.0.1:PORT, prints "pid PID", and "exit STATUS" (as waitpid
reports it) when that child has ended. It exits at the end of stdin.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    import torch

    # A forked child hangs in its first parallel torch operation when the parent has started
    # torch's thread pool; with one thread there is no pool.
    torch.set_num_threads(1)

    import uvicorn

    from api.app import create_app
    from qa.pipeline import Pipeline
    from qa.settings import Settings

    settings = Settings()
    pipeline = Pipeline(settings)
    pipeline.warm_up()  # the models only: each child opens the index itself
    print("loaded", flush=True)
    for line in sys.stdin:
        command, port = line.split()
        assert command == "serve", line
        pid = os.fork()
        if pid == 0:
            try:
                devnull = os.open(os.devnull, os.O_RDWR)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)  # stdout is the parent's channel to the test
                uvicorn.run(create_app(settings, pipeline), host="127.0.0.1", port=int(port),
                            log_level="warning")
            finally:
                os._exit(1)  # never back into the parent's loop
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {status}", flush=True)


if __name__ == "__main__":
    main()

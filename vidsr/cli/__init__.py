"""The ``vidsr`` command: upscale a video or image, or run a subcommand (downscale, batch, train, bench)."""

from __future__ import annotations

import os
import sys

from ..errors import VidsrError
from ..runtime import tune_allocator

SUBCOMMANDS = ("train", "bench", "batch", "downscale")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tune_allocator()
    try:
        if argv and argv[0] == "train":
            from ..train.cli import main as train_main

            return train_main(argv[1:])
        if argv and argv[0] == "bench":
            from ..bench.cli import main as bench_main

            return bench_main(argv[1:])
        if argv and argv[0] == "downscale":
            from .downscale import main as downscale_main

            return downscale_main(argv[1:])
        if argv and argv[0] == "batch":
            from .batch import main as batch_main

            return batch_main(argv[1:])
        from .upscale import main as upscale_main

        return upscale_main(argv)
    except VidsrError as e:
        print(f"vidsr: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vidsr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (`vidsr --list-models | head`): not an error of ours. Point stdout at
        # devnull so the interpreter's final flush does not raise again (Python's signal docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())

"""The process entry: the ``lagscope`` console script and ``python -m lagscope``.

It owns what only a whole process may decide about the cyclic collector. click, the command
group and the chosen command load with the collector off: everything they build stays alive
for the process's life, so the ~20 collections that would run meanwhile could free nothing
(~3 ms of a 20 + 50 probe). Once the command has loaded, what is loaded is frozen (no later
collection walks it again) and the collector comes on (see
:meth:`lagscope.cli.LagscopeGroup.get_command`); when the command returns, the heap is frozen
again, so the interpreter's shutdown collections do not walk it either. In-process callers use
:data:`lagscope.cli.main`, which leaves the collector as it found it.
"""

from __future__ import annotations

import gc


def run() -> None:
    """Run the command group on this process's command line; the process ends after it."""
    gc.disable()
    from lagscope.cli import main

    main.freeze_loaded = True
    try:
        main()
    finally:
        # Whatever is still alive goes back to the OS with the process. Frozen, it is not
        # walked again by the interpreter's shutdown collections: ~10 ms of a 20 + 50 probe
        # run, a tenth of its wall time.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    run()

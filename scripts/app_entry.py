"""Entry point of the one-folder build: the GUI, or the CLI when the first argument is `cli`.

    MicroLibStudio/microlib-studio [--self-test | --library PATH | ...]
    MicroLibStudio/microlib-studio cli library list
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # training runs in a spawned process
    if len(sys.argv) > 1 and sys.argv[1] == "cli":
        from microlib_gui.cli import main as cli_main

        sys.exit(cli_main(sys.argv[2:]))
    from microlib_gui.gui.app import main

    sys.exit(main())

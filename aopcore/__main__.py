"""``python -m aopcore``: the ``aopcore`` command, for an environment whose scripts folder is not on PATH."""

import sys

from aopcore.cli import main

if __name__ == "__main__":  # importing the module (e.g. to list the package's modules) runs nothing
    sys.exit(main())

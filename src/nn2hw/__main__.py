"""``python -m nn2hw``: the ``nn2hw`` command line."""

import sys

from nn2hw.cli import main

sys.exit(main())

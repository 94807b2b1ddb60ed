"""``python -m sendtopacs_adapters`` runs the ``sendtopacs`` command."""

import sys

from sendtopacs_adapters.cli import main

sys.exit(main())

"""``python -m sendtopacs_adapters`` runs the ``sendtopacs`` command."""

from sendtopacs_adapters.cli import run

run()

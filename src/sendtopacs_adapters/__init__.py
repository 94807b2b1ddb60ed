"""sendtopacs_adapters: the ``sendtopacs`` command line (and later the watcher and HTTP API)."""

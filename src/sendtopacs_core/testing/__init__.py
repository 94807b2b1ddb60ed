"""Test helpers for sendtopacs and its users: an in-process storage SCP and pytest fixtures.

`StorageSCP` is a small "test PACS" on a free local port that records every instance it
receives (`ReceivedInstance`) and can answer with scripted statuses, delay, hang, abort or reject
associations (`Rejection`). It needs no pytest, so it also serves ``sendtopacs demo``.

The pytest plugin, ``sendtopacs_core.testing.plugin``, provides the fixtures ``storage_scp`` (a
running SCP storing into ``tmp_path``) and ``storage_scp_factory`` (make SCPs with any options;
all are stopped at teardown). It is registered as the ``sendtopacs`` ``pytest11`` entry point,
so it is active wherever sendtopacs is installed; otherwise enable it with
``pytest -p sendtopacs_core.testing.plugin``.
"""

from sendtopacs_core.testing._storage_scp import ReceivedInstance, Rejection, StorageSCP

__all__ = ["ReceivedInstance", "Rejection", "StorageSCP"]

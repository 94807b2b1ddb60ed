"""Test helpers for sendtopacs and its users: in-process storage and worklist SCPs, fixtures.

`StorageSCP` is a small "test PACS" on a free local port that records every instance it
receives (`ReceivedInstance`) and can answer with scripted statuses, delay, hang, abort or reject
associations (`Rejection`). It needs no pytest, so it also serves ``sendtopacs demo``.

`WorklistSCP` is a Modality Worklist SCP (and Query/Retrieve FIND SCP at the PATIENT and STUDY
levels) that matches C-FIND identifiers against given datasets (PS3.4 C.2.2.2), keeps each
item's character set, supports C-CANCEL and can delay, hang, fail or reject. It runs side by
side with a `StorageSCP` on another port; `make_worklist_item` builds the items it serves.

The pytest plugin, ``sendtopacs_core.testing.plugin``, provides the fixtures ``storage_scp`` (a
running SCP storing into ``tmp_path``) and ``storage_scp_factory`` (make SCPs with any options;
all are stopped at teardown) and ``worklist_scp_factory`` (the same for worklist SCPs). It is
registered as the ``sendtopacs`` ``pytest11`` entry point, so it is active wherever sendtopacs
is installed; otherwise enable it with ``pytest -p sendtopacs_core.testing.plugin``.
"""

from sendtopacs_core.testing._items import make_worklist_item
from sendtopacs_core.testing._storage_scp import ReceivedInstance, Rejection, StorageSCP
from sendtopacs_core.testing._worklist_scp import WorklistSCP

__all__ = ["ReceivedInstance", "Rejection", "StorageSCP", "WorklistSCP", "make_worklist_item"]

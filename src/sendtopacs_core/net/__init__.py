"""Sending to a PACS: input discovery, the copies sent, associations and statuses.

The public face is :mod:`sendtopacs_core.net.sender` (:class:`~sendtopacs_core.net.sender.Sender`);
these modules are internal.
"""

"""The embedded server itself: stopping cleanly under a connected TLS client, stable certificate names."""

import gc

import pytest

from smtp_nb import SMTP, SMTPServerDisconnected
from smtp_nb.server import LocalServer


async def test_stop_with_a_tls_client_connected_closes_everything():
    server = LocalServer(tls=True).start()
    client = SMTP(**server.client_options(), timeout=5)
    await client.connect()
    server.stop()
    with pytest.raises(SMTPServerDisconnected):
        await client.noop()
    gc.collect()  # a socket left open would raise ResourceWarning here (an error in this suite)
    assert not server.running


async def test_certificate_names_do_not_change_between_runs():
    subjects = []
    for _ in range(2):
        with LocalServer(starttls=True) as server:
            async with SMTP(**server.client_options(), timeout=5) as client:
                certificate = client.get_transport_info("peercert")
                subjects.append((certificate["subject"], certificate["issuer"]))
    assert subjects[0] == subjects[1]
    assert ("organizationalUnitName", "demo certificate") in [field for rdn in subjects[0][0] for field in rdn]

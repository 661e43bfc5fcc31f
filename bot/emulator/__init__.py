"""Local emulator of the Graph calls service and of the Teams media side.

``GraphEmulator`` serves the documented Graph calls endpoints, POSTs signed notifications to the
bot, issues app tokens to msal, and lets tests and the demo drive simulated people;
``conference.ConferenceHandler`` plays simulated participants' media to a bot's calls (SRTP over
UDP) and ``meeting.ScriptedMeeting`` hosts a meeting that follows a script; ``mediabot emulator``
(cli.py) runs them together as a process. See server.py for the Graph entry point and
docs/emulator.md for the behaviour it reproduces (the public Graph calls pages, with the
documented bodies of tests/fixtures/graph/README.md).
"""

from .auth import AppRegistration, EmulatorAuth
from .notify import Delivery, NotificationFaults
from .server import GraphEmulator, HttpFault, RecordedRequest
from .service import GraphError, MediaHandler, ServiceOptions
from .state import Call, Meeting, Operation, Participant

__all__ = [
    "AppRegistration",
    "Call",
    "Delivery",
    "EmulatorAuth",
    "GraphEmulator",
    "GraphError",
    "HttpFault",
    "MediaHandler",
    "Meeting",
    "NotificationFaults",
    "Operation",
    "Participant",
    "RecordedRequest",
    "ServiceOptions",
]

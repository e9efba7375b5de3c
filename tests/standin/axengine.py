"""``import axengine`` for ``serve`` subprocesses in tests: the stand-in of ``fake_axengine``,
configured from the environment (see that module). Put ``tests/standin`` and ``tests`` on
``PYTHONPATH`` to use it."""

import os

from support import fake_axengine as _fake

_fake.configure(
    providers=[p for p in os.environ.get("FAKE_AXENGINE_PROVIDERS", _fake.M2).split(",") if p],
    fault=os.environ.get("FAKE_AXENGINE_FAULT") or None,
    fault_opens=int(os.environ.get("FAKE_AXENGINE_FAULT_OPENS", "0")),
    record=os.environ.get("FAKE_AXENGINE_RECORD") or None,
)
if _fake._State.fault == "no_driver":
    raise ImportError("No providers found. Please make sure you have installed one of the runtimes.")

InferenceSession = _fake.InferenceSession
SessionOptions = _fake.SessionOptions
NodeArg = _fake.NodeArg
get_available_providers = _fake.get_available_providers

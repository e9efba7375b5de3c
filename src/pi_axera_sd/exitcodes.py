"""The process exit codes of ``pi-axera-sd`` commands: one contract for the CLI, the service and
the systemd unit (which restarts only on the restartable ones).

* 0 ``OK``: finished, or stopped by SIGTERM after draining.
* 2 ``CONFIG``: a setting, a model file or an install is wrong; retrying cannot help, so systemd
  must not restart (``RestartPreventExitStatus=2``).
* 3 ``RUNTIME``: the runtime kept failing while serving; a restart may help.
* 75 ``NOT_READY`` (BSD ``EX_TEMPFAIL``): the accelerator is not ready yet (e.g. the NPU driver is
  still coming up at boot); retry later.
"""

OK = 0
CONFIG = 2
RUNTIME = 3
NOT_READY = 75

RESTARTABLE = (RUNTIME, NOT_READY)

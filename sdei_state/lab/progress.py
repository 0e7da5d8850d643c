"""Progress lines for the lab's long steps, and the error that names the step that failed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from ..errors import SdeiStateError


class LabError(SdeiStateError):
    """A lab step failed; ``step`` names it and the message says why."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"step '{step}' failed: {reason}")


class Progress:
    """Prints ``lab: <step> ...`` / ``lab: <step>: done in 3.1 s`` on stderr."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.timings: dict[str, float] = {}

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"lab: {msg}", file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block; turn any failure in it into LabError(name, why)."""
        self.say(f"{name} ...")
        t0 = time.monotonic()
        try:
            yield
        except LabError:
            raise
        except subprocess.CalledProcessError as e:
            raise LabError(name, _describe_process_error(e)) from None
        except OSError as e:
            raise LabError(name, f"{e.strerror or e}" + (f": {e.filename}" if e.filename
                                                         else "")) from None
        except RuntimeError as e:  # the lab's own refusals (apt, cache, archives)
            raise LabError(name, str(e)) from None
        dt = time.monotonic() - t0
        self.timings[name] = dt
        self.say(f"{name}: done in {dt:.1f} s")

    def cached(self, name: str, what: str) -> None:
        self.timings[name] = 0.0
        self.say(f"{name}: cached ({what})")


def _describe_process_error(e: subprocess.CalledProcessError) -> str:
    cmd = " ".join(str(c) for c in e.cmd) if isinstance(e.cmd, Sequence) else str(e.cmd)
    out = e.stderr if e.stderr else e.output
    if isinstance(out, bytes):
        out = out.decode(errors="replace")
    tail = "\n".join((out or "").strip().splitlines()[-8:])
    return f"`{cmd}` exited with status {e.returncode}" + (f":\n{tail}" if tail else "")


def run(cmd: Sequence[str | Path], cwd: Path | None = None) -> str:
    """Run a host command, capture its output; CalledProcessError (with stderr) on failure,
    LabError-friendly FileNotFoundError when the tool is missing."""
    try:
        r = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise FileNotFoundError(2, f"{cmd[0]} not found on the host (run `sdei-state lab "
                                   "setup` as root)") from None
    if r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, [str(c) for c in cmd], r.stdout,
                                            r.stderr)
    return r.stdout

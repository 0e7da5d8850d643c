"""The ``sdei-state`` command against malformed input (issue 11 item 4).

Several hundred malformed invocations across every subcommand: files of random bytes,
truncated, bit-flipped and deeply nested blobs and scenarios, integers of thousands of digits,
negative and out-of-range numbers, wrong JSON types, Unicode digits, unknown options and
missing arguments. Each must answer with its documented exit status (2 for unusable input
unless the case says otherwise), exactly one line on stderr, and no traceback.

Every case runs in-process (``main(argv)`` with stdin, stdout and stderr replaced), timed; a
sample, the heavy cases included, also runs as a subprocess with a 5-second timeout and a
200 MB address-space limit, which is what "never unbounded work" means here. The inputs come
from a fixed seed, so a failure names a case that reproduces.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sdei_state.cli import main
from sdei_state.cli.common import MAX_INPUT_BYTES
from sdei_state.migration import Blob, save_vm
from sdei_state.spec import Function
from sdei_state.vcpu.sim import SimVm

SEED = 20261205
TIMEOUT_S = 5.0
MEMORY_BYTES = 200 << 20
ROOT = Path(__file__).resolve().parent.parent

USAGE = frozenset({2})


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    statuses: frozenset[int] = USAGE
    """Exit statuses the command documents for this input (2: unusable input)."""
    stdin: bytes = b""

    def __str__(self) -> str:
        return " ".join(a if len(a) < 60 else f"{a[:57]}..." for a in self.argv)


# -- the corpus ------------------------------------------------------------------------------

def _good_blob() -> Blob:
    vm = SimVm(2)
    v = vm.vcpus[0]
    v.call(Function.EVENT_REGISTER, (0, 0x10000, 7, 0, 0))
    v.call(Function.EVENT_ENABLE, (0,))
    return save_vm(vm.vcpus)


def _scenario() -> dict[str, object]:
    return {"format": "sdei-state/scenario/1", "vcpus": 2,
            "steps": [{"vcpu": 0, "call": "EVENT_REGISTER", "args": [0, 4096, 0, 0, 0]},
                      {"vcpu": 1, "call": "VERSION"}, {"vcpu": 0, "dispatch": True}]}


_HUGE = "9" * 5000
_WRONG: list[object] = [None, True, 1.5, -1, 1 << 64, "0x1", [], {}, [[[]]], int(_HUGE[:700])]


def _blob_inputs(rng: random.Random) -> dict[str, bytes]:
    """Blob files, binary and JSON, every one of which no ``blob`` command may accept."""
    blob = _good_blob()
    binary = blob.to_bytes()
    text = blob.to_json()
    out: dict[str, bytes] = {}
    for n in (0, 1, 7, 27, 28, 29, 100, 1000, 5000):
        out[f"random-{n}"] = rng.randbytes(n)
    out["magic-then-random"] = b"SDEIREGS" + rng.randbytes(200)
    for cut in sorted(rng.sample(range(1, len(binary)), 12)):
        out[f"binary-cut-{cut}"] = binary[:cut]
    for pos in sorted(rng.sample(range(len(binary)), 10)):
        flipped = bytearray(binary)
        flipped[pos] ^= 1 << rng.randrange(8)
        out[f"binary-flip-{pos}"] = bytes(flipped)
    out["binary-trailing"] = binary + b"\0"
    for cut in sorted(rng.sample(range(1, len(text)), 10)):
        out[f"json-cut-{cut}"] = text[:cut].encode()
    out["nested-lists"] = b"[" * 100_000 + b"]" * 100_000
    out["nested-objects"] = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    out["nested-unclosed"] = b"{" + b"[" * 200_000
    base = blob.to_json_obj()
    for i, wrong in enumerate(_WRONG):
        for key in ("format", "abi_version", "registers", "vcpus"):
            out[f"json-{key}-wrong-{i}"] = json.dumps(base | {key: wrong}).encode()
        row = list(base["vcpus"][0])
        row[rng.randrange(len(row))] = wrong
        out[f"json-value-wrong-{i}"] = json.dumps(base | {"vcpus": [row, row]}).encode()
        regs = list(base["registers"])
        regs[rng.randrange(len(regs))] = wrong if wrong != "0x1" else "0x1_0"  # 0x1 is an id
        out[f"json-register-wrong-{i}"] = json.dumps(base | {"registers": regs}).encode()
    out["json-value-5000-digits"] = text.replace("[[0", "[[" + _HUGE, 1).encode()
    out["json-value-negative-huge"] = text.replace("[[0", "[[-" + _HUGE, 1).encode()
    out["json-unicode-digit-id"] = text.replace('"0x6', '"0x\u0666', 1).encode()
    out["json-nan"] = text.replace("[[0", "[[NaN", 1).encode()
    out["json-duplicate-key"] = text.replace("{", '{"vcpus": [], ', 1).encode()
    out["json-extra-key"] = json.dumps(base | {"names": {}}).encode()
    out["json-missing-key"] = json.dumps({k: v for k, v in base.items() if k != "vcpus"}).encode()
    out["json-not-utf8"] = text.replace("sdei-state", "sdei\xff").encode("latin-1")
    out["json-utf16"] = text.encode("utf-16")
    for i, other in enumerate(("null", "1", '"s"', "[]", "{}", "   ", "true")):
        out[f"json-other-{i}"] = other.encode()
    return out


def _scenario_inputs(rng: random.Random) -> dict[str, bytes]:
    """Scenario files no replay may run."""
    doc = _scenario()
    text = json.dumps(doc)
    out: dict[str, bytes] = {}
    for n in (0, 1, 50, 3000):
        out[f"random-{n}"] = rng.randbytes(n)
    for cut in sorted(rng.sample(range(1, len(text)), 8)):
        out[f"cut-{cut}"] = text[:cut].encode()
    out["nested-lists"] = b"[" * 100_000 + b"]" * 100_000
    out["nested-steps"] = text.replace('"steps": [', '"steps": [' + "[" * 100_000, 1).encode()
    out["not-utf8"] = b'{"format": "\xff"}'
    out["vcpus-2-20"] = json.dumps(doc | {"vcpus": 1 << 20}).encode()
    out["vcpus-huge"] = text.replace('"vcpus": 2', '"vcpus": ' + _HUGE, 1).encode()
    for i, wrong in enumerate(_WRONG):
        out[f"vcpus-wrong-{i}"] = json.dumps(doc | {"vcpus": wrong}).encode()
        out[f"steps-wrong-{i}"] = json.dumps(doc | {"steps": [wrong]}).encode()
        step = {"vcpu": 0, "call": "EVENT_REGISTER", "args": [0, wrong, 0, 0, 0]}
        out[f"args-wrong-{i}"] = json.dumps(doc | {"steps": [step]}).encode()
    out["args-unicode-digit"] = text.replace("4096", '"\u0664\u0660\u0669\u0666"', 1).encode()
    out["format-wrong"] = json.dumps(doc | {"format": "x"}).encode()
    out["duplicate-key"] = text.replace("{", '{"vcpus": 1, ', 1).encode()
    return out


def _argument_cases(rng: random.Random, good: str, scen: str) -> Iterator[Case]:
    numbers = ["-1", "-0x1", str(1 << 64), "0x" + "f" * 17, _HUGE, "1e3", "1.5", "nan",
               "\u0661\u0662", "0x\u0661", "", " 1", "1_", "0b2", "010", "x"]
    for text in ["NOT_A_REGISTER", "SDEI_EVENT_STATE(\u0660)", "0x\u0666030000000140110",
                 "x" * 5000, "SDEI_EVENT_STATE(" + _HUGE + ")", "ARM64_SYS_REG(3,0,12,0)",
                 "", "-1", str(1 << 64), "KVM_REG_ARM_FW_REG(-1)", "\0", "(((((", "%s%n"]:
        yield Case(("decode", text))
        yield Case(("decode", text, "--json"))
    for n in numbers:
        yield Case(("decode", "SDEI_EVENT_STATE(0)", "--value", n))
        yield Case(("decode", "x0", "VBAR_EL1", "--value", n, "--json"))
        yield Case(("blob", "preflight", good, "--vcpus", n))
        for opt in ("--steps", "--vcpus", "--seed"):
            yield Case(("scenario", "generate", opt, n))
    for n in ("100000000", str(1 << 32), "4097"):
        yield Case(("blob", "preflight", good, "--vcpus", n))
        yield Case(("scenario", "generate", "--vcpus", n))
    yield Case(("scenario", "generate", "--steps", str(10**9)))
    yield Case(("decode", "0x6030000000150000", "--value", "1"), frozenset({1}))  # malformed id
    for host in ("nope", "", "6.12 ", "SDEI", "\u0666.12"):
        yield Case(("regs", "--host", host))
        yield Case(("blob", "preflight", good, "--host", host))
    subcommands = [("selftest",), ("replay", scen), ("scenario", "generate"), ("regs",),
                   ("decode", "x0"), ("blob", "show", good), ("blob", "diff", good, good),
                   ("blob", "preflight", good), ("vectors", "verify"), ("vectors", "generate"),
                   ("lab", "status")]
    for sub in subcommands:
        yield Case((*sub, "--no-such-option"))
        yield Case((*sub, "--" + "".join(rng.choices("abcdefgh", k=8))))
        yield Case((*sub, "-Z"))
    for missing in [("replay",), ("decode",), ("blob",), ("blob", "show"), ("blob", "diff", good),
                    ("blob", "preflight"), ("blob", "nope"), ("scenario",), ("scenario", "x"),
                    ("vectors",), ("vectors", "x"), ("lab", "run"), ()]:
        yield Case(missing)
    for top in (("nope",), ("--nope",), ("-x",), ("\u0000",), ("--nope", "x")):
        yield Case(top)
    for fmt in ("xml", "", "TAP"):
        yield Case(("selftest", "--format", fmt))
    for backend in ("qemu", "", "KVM"):
        yield Case(("selftest", "--backend", backend))
    yield Case(("selftest", "--list", "--suite", "nope"))
    yield Case(("selftest", "--list", "--case", "\u0000"))
    yield Case(("selftest", "--list", "--suite", "[" * 1000))
    yield Case(("selftest", "--suite", "sdei-calls", "-o", "/nonexistent/dir/report"))
    for n in ("-1", "x", "1.5", "nan", "", "99", "\u0669"):
        yield Case(("lab", "status", "--smp", n))
    yield Case(("lab", "--kernel", "5.4", "status"))
    yield Case(("lab", "status", "--kvm-mode", "fast"))
    yield Case(("lab", "status", "--mem", "10"))
    for path in ("/nonexistent/vectors", "/dev/null", "/proc/self/status"):
        yield Case(("vectors", "verify", "--dir", path))
    yield Case(("vectors", "generate", "--dir", "/dev/null"))
    yield Case(("vectors", "generate", "--dir", "/proc/nope/vectors"))


def _corpus(tmp: Path) -> list[Case]:
    rng = random.Random(SEED)
    good = tmp / "good.blob"
    good.write_bytes(_good_blob().to_bytes())
    scen = tmp / "good-scenario.json"
    scen.write_text(json.dumps(_scenario()))
    cases: list[Case] = []
    for name, data in _blob_inputs(rng).items():
        f = tmp / f"blob-{name}"
        f.write_bytes(data)
        cases += [Case(("blob", "show", str(f))), Case(("blob", "show", str(f), "--json")),
                  Case(("blob", "preflight", str(f)))]
        cases.append(Case(("blob", "diff", str(good), str(f))) if rng.random() < 0.5
                     else Case(("blob", "diff", str(f), str(good), "--json")))
    for name, data in _scenario_inputs(rng).items():
        f = tmp / f"scenario-{name}"
        f.write_bytes(data)
        cases.append(Case(("replay", str(f))))
    for data in (b"", b"[" * 100_000, rng.randbytes(100)):
        cases += [Case(("replay", "-"), stdin=data), Case(("blob", "show", "-"), stdin=data)]
    for path in (str(tmp / "missing"), str(tmp), "/dev/zero", "/dev/null", "\n"):
        cases += [Case(("blob", "show", path)), Case(("replay", path)),
                  Case(("blob", "preflight", path))]
    big = tmp / "big"
    with big.open("wb") as out:
        out.truncate(MAX_INPUT_BYTES + 1)
    cases += [Case(("blob", "show", str(big))), Case(("replay", str(big)))]
    cases += list(_argument_cases(rng, str(good), str(scen)))
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return _corpus(tmp_path_factory.mktemp("fuzz"))


# -- the checks ------------------------------------------------------------------------------

def _problem(case: Case, status: int, err: str) -> str | None:
    if "Traceback" in err:
        return f"traceback: {err.strip().splitlines()[-1][:200]}"
    if status not in case.statuses:
        return f"exit status {status}, expected {sorted(case.statuses)}; stderr {err[:200]!r}"
    if status == 2 and (err.count("\n") != 1 or not err.endswith("\n")):
        return f"stderr is not one line: {err[:300]!r}"
    if status == 2 and not err.startswith("sdei-state"):
        return f"stderr does not name the command: {err[:200]!r}"
    return None


def _run_in_process(case: Case) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(case.stdin))
    saved = sys.stdin
    sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(list(case.argv))
            except SystemExit as e:  # only --help and --version exit; a mistake returns 2
                status = e.code if isinstance(e.code, int) else 1
    finally:
        sys.stdin = saved
    return status, err.getvalue()


def test_the_corpus_covers_every_subcommand(corpus: list[Case]) -> None:
    assert len(corpus) >= 300
    firsts = {" ".join(c.argv[:2]) if c.argv[:1] in (("blob",), ("scenario",), ("vectors",))
              else " ".join(c.argv[:1]) for c in corpus}
    assert {"selftest", "replay", "scenario generate", "regs", "decode", "blob show",
            "blob diff", "blob preflight", "vectors verify", "vectors generate",
            "lab"} <= firsts


def test_every_malformed_invocation_is_one_line_in_process(corpus: list[Case]) -> None:
    """All of the corpus in-process: no traceback, the documented status, one line."""
    failures: list[str] = []
    slowest = (0.0, "")
    for case in corpus:
        t0 = time.perf_counter()
        try:
            status, err = _run_in_process(case)
        except BaseException as e:  # a crash is a finding, not the end of the run
            status, err = -1, f"Traceback: {type(e).__name__}: {str(e)[:200]}"
        took = time.perf_counter() - t0
        slowest = max(slowest, (took, str(case)))
        problem = _problem(case, status, err)
        if problem is None and took > TIMEOUT_S:
            problem = f"took {took:.1f} s"
        if problem is not None:
            failures.append(f"{case}: {problem}")
    assert not failures, (f"{len(failures)} of {len(corpus)} invocations misbehaved (slowest "
                          f"{slowest[0]:.2f} s: {slowest[1]}):\n" + "\n".join(failures))


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def _sample(corpus: list[Case]) -> list[Case]:
    """The heavy cases (sizes that would allocate or loop without a check) and every 32nd."""
    heavy = ("100000000", "4097", str(10**9), "/dev/zero", "nested", "vcpus-2-20", "5000-digits",
             "vcpus-huge", "big", "x" * 100)
    picked = [c for c in corpus if any(h in a for h in heavy for a in c.argv)]
    return picked + [c for c in corpus[::32] if c not in picked]


def test_a_sample_runs_within_5_s_and_200_mb_as_a_subprocess(corpus: list[Case]) -> None:
    sample = _sample(corpus)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    failures: list[str] = []
    for case in sample:
        try:
            proc = subprocess.run([sys.executable, "-m", "sdei_state", *case.argv],
                                  input=case.stdin, capture_output=True, timeout=TIMEOUT_S,
                                  preexec_fn=_limits, env=env, cwd=ROOT, check=False)
        except subprocess.TimeoutExpired:
            failures.append(f"{case}: still running after {TIMEOUT_S:.0f} s")
            continue
        problem = _problem(case, proc.returncode, proc.stderr.decode("utf-8", "replace"))
        if problem is not None:
            failures.append(f"{case}: {problem}")
    assert len(sample) >= 40
    assert not failures, (f"{len(failures)} of {len(sample)} subprocess runs misbehaved:\n"
                          + "\n".join(failures))

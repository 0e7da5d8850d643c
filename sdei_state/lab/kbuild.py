"""``sdei-state lab kernel build``: cross-build the lab's ``sdei`` kernel, an arm64 ``Image`` of
Debian's ``linux-source-6.12`` with the KVM SDEI series of ``kernel/patches`` applied.

The configuration is ``make allnoconfig`` with ``kernel/config/*.config`` forced on top
(``KCONFIG_ALLCONFIG``): only what the lab uses, all built in, so no modules are needed and
a cold build stays short on two cores. Every option a fragment sets is checked in the
resulting ``.config`` (a misspelt or unsatisfiable option is an error naming it).

The result is cached in ``<cache>/kernels/sdei`` under the hash of the source version, the
patches and the configuration; the object directory ``<cache>/kbuild/obj`` is kept, so a
changed patch rebuilds only what it touches. Builds run under ``nice -n 19`` with ``-j2``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .cache import replace_dir
from .config import LabConfig
from .cpio import CpioWriter
from .progress import LabError, Progress

SOURCE_PACKAGE = "linux-source-6.12"
SOURCE_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
CROSS_COMPILE = "aarch64-linux-gnu-"
BUILD_PACKAGES = ("linux-source-6.12", "gcc-aarch64-linux-gnu", "bc", "bison", "flex",
                  "libssl-dev", "libelf-dev", "cpio", "make")
FRAGMENTS = ("lab.config", "sdei.config")
COVER_LETTER = "0000-cover-letter.patch"
JOBS = 2  # the build machines are shared two-core hosts


def series(project: Path) -> list[Path]:
    """The patches of ``kernel/patches`` in order, without the cover letter."""
    return sorted(p for p in (project / "kernel" / "patches").glob("*.patch")
                  if p.name != COVER_LETTER)


def fragment_text(project: Path) -> str:
    """The configuration fragments, concatenated in order (what ``KCONFIG_ALLCONFIG`` gets)."""
    parts = []
    for name in FRAGMENTS:
        path = project / "kernel" / "config" / name
        parts.append(f"# --- kernel/config/{name}\n{path.read_text()}")
    return "".join(parts)


def fragment_options(text: str) -> dict[str, str]:
    """``CONFIG_X`` -> value for every ``CONFIG_X=value`` line; ``# CONFIG_X is not set``
    counts as ``n``. ValueError names a line that is neither."""
    opts: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            opts[line[2:-len(" is not set")]] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            opts[key] = value
        elif line and not line.startswith("#"):
            raise ValueError(f"config fragment line {n}: {raw!r} is not CONFIG_X=value")
    return opts


def missing_options(wanted: dict[str, str], dotconfig: str) -> list[str]:
    """The options of ``wanted`` that the resulting ``.config`` does not have as asked, as
    ``CONFIG_X=wanted (got value)``."""
    got = fragment_options("\n".join(ln for ln in dotconfig.splitlines()
                                     if ln.startswith(("CONFIG_", "# CONFIG_"))))
    return [f"{k}={v} (got {got.get(k, 'n')})" for k, v in wanted.items()
            if got.get(k, "n") != v]


def build_key(source_version: str, patches: Sequence[bytes], config: str) -> str:
    """What the cached Image depends on: the source package version, the patches in order
    and the configuration text."""
    h = hashlib.sha256()
    for part in (source_version.encode(), *patches, config.encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:16]


def make_argv(tree: Path, obj: Path, *targets: str, jobs: int = JOBS) -> list[str]:
    """The niced cross ``make`` for ``targets`` in source ``tree`` with objects in ``obj``."""
    return ["nice", "-n", "19", "make", "-C", str(tree), "-s", "ARCH=arm64",
            f"CROSS_COMPILE={CROSS_COMPILE}", f"O={obj}", f"-j{jobs}", *targets]


def kernel_dir(cfg: LabConfig) -> Path:
    return cfg.cache / "kernels" / "sdei"


def source_version() -> str:
    """The installed version of Debian's source package; LabError if it is missing."""
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", SOURCE_PACKAGE],
                       capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout or not SOURCE_TARBALL.is_file():
        raise LabError("kernel build", f"{SOURCE_PACKAGE} is not installed (apt-get install "
                                       f"-y {' '.join(BUILD_PACKAGES)})")
    return r.stdout.strip()


def _check_tools() -> None:
    for tool in (f"{CROSS_COMPILE}gcc", "make", "patch", "bison", "flex", "bc"):
        if shutil.which(tool) is None:
            raise LabError("kernel build", f"{tool} not found (apt-get install -y "
                                           f"{' '.join(BUILD_PACKAGES)})")


def _run(step: str, argv: list[str], env: dict[str, str] | None = None,
         stdin: Path | None = None, log: Path | None = None) -> None:
    with (stdin.open("rb") if stdin else open(os.devnull, "rb")) as inp:
        r = subprocess.run(argv, stdin=inp, capture_output=True, text=True,
                           env={**os.environ, **(env or {})})
    if log is not None:
        log.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise LabError(step, f"exit status {r.returncode}: {' '.join(argv[:6])} ...\n{tail}")


def _unpack(version: str, work: Path) -> Path:
    pristine = work / f"pristine-{version}"
    if pristine.is_dir():
        return pristine
    tmp = work / f"pristine-{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run("unpack the kernel source", ["nice", "-n", "19", "tar", "-xf", str(SOURCE_TARBALL),
                                      "-C", str(tmp), "--strip-components=1"])
    tmp.rename(pristine)
    return pristine


def _patched_files(patch: bytes) -> list[str]:
    return [ln[6:].split("\t")[0] for ln in patch.decode(errors="replace").splitlines()
            if ln.startswith("+++ b/")]


def _prepare_tree(pristine: Path, work: Path, patches: Sequence[Path]) -> Path:
    """A hard-linked copy of the pristine source with the series applied. Files patched now
    or by the previous build are real copies with a fresh mtime, so that make rebuilds what
    depends on them either way."""
    tree = work / "tree"
    record = work / "obj" / "PATCHED_FILES"
    touched = set(record.read_text().split()) if record.is_file() else set()
    now = {f for p in patches for f in _patched_files(p.read_bytes())}
    shutil.rmtree(tree, ignore_errors=True)
    _run("copy the kernel source", ["cp", "-al", str(pristine), str(tree)])
    for rel in sorted(touched | now):
        f = tree / rel
        if f.is_file():
            data = f.read_bytes()
            f.unlink()
            f.write_bytes(data)  # a new inode: patching it leaves the pristine copy alone
    for p in patches:
        _run(f"apply {p.name}", ["patch", "-p1", "-s", "--forward", "-d", str(tree), "-i",
                                 str(p)])
    (work / "obj").mkdir(parents=True, exist_ok=True)
    record.write_text("".join(f + "\n" for f in sorted(now)))
    return tree


def _write_kernel(cfg: LabConfig, obj: Path, tree: Path, key: str, version: str) -> Path:
    kver = subprocess.run(make_argv(tree, obj, "kernelrelease"), capture_output=True,
                          text=True).stdout.strip() or "unknown"
    stage = cfg.cache / "kernels" / "sdei.new"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    shutil.copy2(obj / "arch" / "arm64" / "boot" / "Image", stage / "Image")
    shutil.copy2(obj / ".config", stage / "config")
    (stage / "KVER").write_text(kver + "\n")
    with (stage / "mods.cpio").open("wb") as f:
        CpioWriter(f).close()  # everything is built in: no modules to load
    (stage / "MODULES").write_text("")
    (stage / "STAMP").write_text(f"{SOURCE_PACKAGE} {version} + kernel/patches, key {key}\n")
    replace_dir(stage, kernel_dir(cfg))
    return kernel_dir(cfg)


def build(cfg: LabConfig, progress: Progress, project: Path) -> Path:
    """Make ``<cache>/kernels/sdei`` hold the Image of the current series and configuration;
    a no-op when the cached one has the same key."""
    patches = series(project)
    if not patches:
        raise LabError("kernel build", f"no patches in {project / 'kernel' / 'patches'}")
    try:
        text = fragment_text(project)
        wanted = fragment_options(text)
    except (OSError, ValueError) as e:
        raise LabError("kernel build", str(e)) from None
    version = source_version()
    key = build_key(version, [p.read_bytes() for p in patches], text)
    kdir = kernel_dir(cfg)
    stamp = kdir / "STAMP"
    if (kdir / "Image").is_file() and stamp.is_file() and stamp.read_text().split()[-1] == key:
        progress.cached("kernel sdei", stamp.read_text().strip())
        return kdir
    _check_tools()
    work = cfg.cache / "kbuild"
    obj = work / "obj"
    with progress.step(f"kernel sdei: unpack {SOURCE_PACKAGE} {version}"):
        pristine = _unpack(version, work)
    with progress.step(f"kernel sdei: apply {len(patches)} patches"):
        tree = _prepare_tree(pristine, work, patches)
    with progress.step("kernel sdei: allnoconfig + kernel/config fragments"):
        frag = obj / "fragment.config"
        frag.write_text(text)
        _run("configure the kernel", make_argv(tree, obj, "allnoconfig"),
             env={"KCONFIG_ALLCONFIG": str(frag)})
        missing = missing_options(wanted, (obj / ".config").read_text())
        if missing:
            raise LabError("configure the kernel", "options the fragments set did not stick: "
                                                   + ", ".join(missing))
    with progress.step(f"kernel sdei: build the arm64 Image (nice -n 19, -j{JOBS})"):
        _run("build the kernel", make_argv(tree, obj, "Image"), log=work / "build.log")
    kdir = _write_kernel(cfg, obj, tree, key, version)
    progress.say(f"kernel sdei: {(kdir / 'KVER').read_text().strip()}, key {key}")
    return kdir

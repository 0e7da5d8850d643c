"""``sdei-state lab``: the project's arm64 KVM lab on an x86_64 (or any) Debian 12 host.

It boots Debian's arm64 kernel under QEMU TCG with EL2 emulated (``-M virt,virtualization=on``),
so KVM comes up inside the emulated machine and ``/dev/kvm`` there is real arm64 KVM. The
initramfs carries Python 3.11, cffi (ABI mode), construct, pytest, hypothesis and this library;
the project directory is shared read-only over 9p as the working directory. One command runs,
its output and exit status come back, QEMU powers off.

Everything big is cached under ``~/.cache/sdei-state/lab`` (``--cache``): kernels, the
userspace archive, the library layer (rebuilt when the sources change). A host without the lab's
packages is set up on first use when run as root. See docs/lab.md.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from . import cache
from .config import BUILT_KERNELS, DEFAULT_CPU, KERNELS, KVM_MODES, LabConfig, default_cache_dir
from .progress import LabError, Progress
from .qemu import RunResult

__all__ = ["LabConfig", "LabError", "RunResult", "build", "main", "run"]

EXIT_LAB_FAILURE = 2
EXIT_TIMEOUT = 124
PACKAGE_DIR = Path(__file__).resolve().parent.parent  # .../sdei_state


def project_root() -> Path:
    """The directory holding ``sdei_state`` (and, in a source tree, ``cdefs/`` and ``tests/``)."""
    return PACKAGE_DIR.parent


@dataclass(frozen=True)
class Built:
    """The artifacts a boot needs."""

    kernel_dir: Path
    initrd: Path


def build(cfg: LabConfig, progress: Progress, project: Path | None = None,
          refresh: bool = True, with_uapi: bool = True) -> Built:
    """Fetch/build whatever is missing or stale: kernel, userspace, library layer. With
    ``refresh`` apt is asked for newer kernel and userspace packages (``lab build``);
    without, what is cached is used as is (``lab run``)."""
    from . import guest_assets, host, kernel, qemu, rootfs

    project = project or project_root()
    host.ensure(progress, cfg.qemu)
    cache.prepare(cfg.cache)  # CacheError (one line) for a directory that is not the lab's
    if cfg.kernel in BUILT_KERNELS:
        from . import kbuild

        kdir = kbuild.build(cfg, progress, project)
    else:
        kdir = kernel.fetch(cfg, progress, refresh)
    userspace = rootfs.build_userspace(cfg, progress, refresh)
    app = rootfs.build_app(cfg, project, progress)
    if with_uapi:
        rootfs.fetch_uapi_headers(cfg, progress)
    nested = guest_assets.build(cfg, progress, refresh)  # linux-guest: Image, module, libfdt
    layers = [userspace, kdir / "mods.cpio", app] + ([nested] if nested else [])
    if cfg.with_qemu:
        from . import qemu_layer

        layers.append(qemu_layer.build(cfg, progress, refresh))  # QEMU for stock-vmm
    with progress.step(f"initramfs: userspace + modules + library + {len(layers) - 3} "
                       "layer(s)"):
        initrd = qemu.combined_initrd(cfg, layers)
    return Built(kdir, initrd)


def run(cfg: LabConfig, command: str, *, share: Path | None = None,
        progress: Progress | None = None, stream: TextIO | None = sys.stdout) -> RunResult:
    """Build what is missing, boot, run ``command`` (a shell command line) in the guest with
    ``share`` (default: the project root) as its working directory. Raises LabError naming
    the step that failed."""
    from . import qemu

    progress = progress or Progress()
    built = build(cfg, progress, refresh=False, with_uapi=False)
    share = share or project_root()
    log = cfg.cache / "last-console.log"
    with progress.step(f"boot {cfg.kernel} ({cfg.kvm_mode}, -cpu {cfg.cpu}) and run "
                       f"`{command}`"), log.open("w") as console:
        try:
            res = qemu.boot(cfg, built.kernel_dir, built.initrd, share, command,
                            stream=stream, console_log=console)
        except TimeoutError as e:
            raise LabError("boot and run", str(e)) from None
        except RuntimeError as e:
            raise LabError("boot and run", f"{e}\n(full console: {log})") from None
    progress.say(f"kernel {res.kernel}; {res.kvm or 'no KVM message'}; boot {res.boot_seconds:.1f}"
                 f" s, command {res.command_seconds:.1f} s, QEMU total {res.total_seconds:.1f}"
                 f" s; exit status {res.returncode}")
    if cfg.kvm_mode == "vhe" and res.kvm and "VHE" not in res.kvm.replace("nVHE", ""):
        progress.say(f"note: asked for VHE, KVM says {res.kvm!r} (this -cpu may lack FEAT_VHE)")
    return res


# -- command line ----------------------------------------------------------------------------

SUBCOMMANDS = ("setup", "build", "run", "test", "shell", "status", "clean", "kernel")


def _parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
            ) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("lab options")
    g.add_argument("--kernel", choices=(*KERNELS, *BUILT_KERNELS), default="6.12",
                   help="Debian arm64 kernel series (default 6.12; 6.1 has no SMCCC filter), "
                        "or sdei: Debian's 6.12 source with the KVM SDEI series, built here")
    g.add_argument("--kvm-mode", choices=KVM_MODES, default="vhe",
                   help="KVM mode of the emulated host (kvm-arm.mode=; default vhe)")
    g.add_argument("--cpu", default=DEFAULT_CPU, metavar="MODEL",
                   help=f"QEMU -cpu model of the emulated host (default {DEFAULT_CPU})")
    g.add_argument("--smp", type=int, default=2, help="emulated host CPUs (default 2)")
    g.add_argument("--mem", type=int, default=2048, metavar="MIB",
                   help="emulated host memory in MiB (default 2048)")
    g.add_argument("--timeout", type=float, default=900, metavar="SECONDS",
                   help="kill QEMU after this long (default 900)")
    g.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help=f"cache directory (default {default_cache_dir()})")
    g.add_argument("--share", type=Path, default=None, metavar="DIR",
                   help="host directory shared read-only as the guest's working directory "
                        "(default: the project root)")
    g.add_argument("--with-qemu", action="store_true",
                   help="also put Debian's qemu-system-arm and a Linux guest for it in the lab "
                        "(the stock-vmm selftest suite)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="also show the guest console (kernel and init messages)")
    p = parser_class(
        prog="sdei-state lab", description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="`sdei-state lab [options] -- CMD` is short for `sdei-state lab run ...`.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("setup", parents=[common],
                   help="install host packages and enable apt's arm64 architecture (root; "
                        "build, run, test and shell do it themselves when run as root)")
    sub.add_parser("build", parents=[common],
                   help="fetch the kernel and build the initramfs now (cached)")
    r = sub.add_parser("run", parents=[common], help="boot and run a shell command")
    r.add_argument("command", nargs=argparse.REMAINDER, help="the command (after --)")
    t = sub.add_parser("test", parents=[common],
                       help="run the arm64 tests (tests/arm64) inside the lab with pytest")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER,
                   help="extra pytest arguments (after --)")
    sub.add_parser("shell", parents=[common], help="boot to an interactive shell")
    k = sub.add_parser("kernel", parents=[common],
                       help="build the sdei kernel (Debian's linux-source-6.12 + kernel/patches, "
                            "cached by the hash of source version, patches and config)")
    k.add_argument("action", choices=("build",), help="build: cross-build the arm64 Image now")
    sub.add_parser("status", parents=[common], help="show what is cached")
    sub.add_parser("clean", parents=[common],
                   help="delete the cache directory (only one the lab created: it has a "
                        f"{cache.MARKER} marker)")
    return p


def _config(a: argparse.Namespace) -> LabConfig:
    return LabConfig(cache=(a.cache or default_cache_dir()).expanduser().resolve(),
                     kernel=a.kernel, kvm_mode=a.kvm_mode, cpu=a.cpu, smp=a.smp,
                     mem_mb=a.mem, timeout=a.timeout, with_qemu=a.with_qemu)


def _strip_dashes(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args


def _pytest_command(extra: list[str]) -> str:
    # -P: import sdei_state from the initramfs (byte-compiled), not from the 9p share.
    args = ["python3", "-P", "-m", "pytest", "-p", "no:cacheprovider", "-rs"]
    args += extra or ["tests/arm64"]
    return shlex.join(args)


def _status(cfg: LabConfig) -> int:
    c = cfg.cache
    print(f"cache: {c}{'' if c.exists() else ' (empty)'}")
    for series in (*KERNELS, *BUILT_KERNELS):
        kdir = c / "kernels" / series
        stamp = kdir / "STAMP"
        print(f"kernel {series}: " + (stamp.read_text().strip() if stamp.is_file()
                                      else "not fetched"))
    us = c / "userspace.cpio"
    print("userspace: " + (f"{us.stat().st_size >> 20} MiB" if us.is_file() else "not built"))
    apps = sorted(c.glob("app-*.cpio"))
    print("library layer: " + (", ".join(a.name for a in apps) or "not built"))
    if c.exists():
        total = sum(f.stat().st_size for f in c.rglob("*") if f.is_file() and not f.is_symlink())
        print(f"disk: {total >> 20} MiB")
    return 0


def main(argv: list[str],
         parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> int:
    """``sdei-state lab ...``; returns the exit status (the guest command's for run/test).
    ``parser_class`` lets the ``sdei-state`` command report option mistakes its own way."""
    argv = list(argv)
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in ("-h", "--help"):
        argv = ["run", *argv]
    a = _parser(parser_class).parse_args(argv)
    try:
        cfg = _config(a)
    except ValueError as e:
        print(f"sdei-state lab: {e}", file=sys.stderr)
        return EXIT_LAB_FAILURE
    progress = Progress(quiet=a.quiet)
    try:
        return _dispatch(a, cfg, progress)
    except LabError as e:
        print(f"sdei-state lab: {e}", file=sys.stderr)
        return EXIT_TIMEOUT if "did not finish within" in e.reason else EXIT_LAB_FAILURE
    except KeyboardInterrupt:
        print("sdei-state lab: interrupted", file=sys.stderr)
        return 130
    except (OSError, RuntimeError) as e:  # outside a named step (e.g. the shell's boot)
        print(f"sdei-state lab: {e}", file=sys.stderr)
        return EXIT_LAB_FAILURE


def _dispatch(a: argparse.Namespace, cfg: LabConfig, progress: Progress) -> int:
    if a.cmd == "setup":
        from . import host

        host.setup(progress)
        return 0
    if a.cmd == "status":
        return _status(cfg)
    if a.cmd == "clean":
        progress.say(cache.clean(cfg.cache))  # CacheError (one line) unless the lab's own
        return 0
    if a.cmd == "build":
        build(cfg, progress)
        return 0
    if a.cmd == "kernel":
        from . import kbuild

        cache.prepare(cfg.cache)  # CacheError (one line) for a directory that is not the lab's
        kbuild.build(cfg, progress, project_root())
        return 0
    share = a.share.resolve() if a.share else None
    if share is not None and not share.is_dir():
        print(f"sdei-state lab: --share {a.share}: not a directory", file=sys.stderr)
        return EXIT_LAB_FAILURE
    if a.cmd == "shell":
        from . import qemu

        built = build(cfg, progress, refresh=False, with_uapi=False)
        res = qemu.boot(cfg, built.kernel_dir, built.initrd, share or project_root(), None)
        return res.returncode
    if a.cmd == "run":
        words = _strip_dashes(a.command)
        if not words:
            print("sdei-state lab run: no command given (sdei-state lab run -- CMD ...)",
                  file=sys.stderr)
            return EXIT_LAB_FAILURE
        command = words[0] if len(words) == 1 else shlex.join(words)
    else:  # test
        command = _pytest_command(_strip_dashes(a.pytest_args))
    res = run(cfg, command, share=share, progress=progress,
              stream=sys.stdout)
    if a.verbose:
        print(res.console, file=sys.stderr)
    return res.returncode

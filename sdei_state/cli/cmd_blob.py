"""``sdei-state blob show|diff|preflight``: migration blobs (binary or JSON form, see
docs/migration.md) from the command line.

``blob show --json`` prints the blob's own JSON form, which every ``blob`` command reads back.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import BlobError
from .cmd_regs import host_preset
from .common import MAX_VCPUS, UserError, dump, int_arg, read_bytes, source_name


def load_blob(path: str) -> Any:
    """A blob from a file (``-``: stdin): the JSON form when it starts with ``{`` or ``[``
    (after blanks), else the binary form. ``BlobError`` names the file."""
    from ..migration import Blob

    data = read_bytes(path)
    try:
        if data.lstrip()[:1] in (b"{", b"["):
            return Blob.from_json(data)
        return Blob.from_bytes(data)
    except BlobError as e:
        raise BlobError(f"{source_name(path)}: {e}") from None


def _meaning(rid: int, value: int) -> str:
    from ..regs import firmware, sdei

    if sdei.is_sdei_id(rid):
        return sdei.describe_value(rid, value)
    if firmware.is_firmware_reg(rid):
        return firmware.decode_value(rid, value)
    return ""


def cmd_blob_show(a: argparse.Namespace) -> int:
    from ..regs import ids

    blob = load_blob(a.file)
    if a.json:
        dump(blob.to_json_obj())
        return 0
    size = len(blob.to_bytes())
    print(f"{source_name(a.file)}: {blob.nr_vcpus} vCPU(s), {len(blob.reg_ids)} registers "
          f"each, {size} bytes ({size / blob.nr_vcpus:.1f} bytes per vCPU)")
    for i in range(blob.nr_vcpus):
        print(f"vCPU {i}:")
        for rid, v in blob.vcpu(i).items():
            meaning = _meaning(rid, v)
            if a.all or v or meaning:
                print(f"  {ids.short_name(rid):<28} {v:#x}" + (f"  {meaning}" if meaning
                                                                  else ""))
    return 0


def cmd_blob_diff(a: argparse.Namespace) -> int:
    from ..regs import ids

    x, y = load_blob(a.a), load_blob(a.b)
    diffs: list[dict[str, Any]] = []
    if x.nr_vcpus != y.nr_vcpus:
        diffs.append({"what": "vcpus", "a": x.nr_vcpus, "b": y.nr_vcpus})
    for i in range(min(x.nr_vcpus, y.nr_vcpus)):
        ra, rb = x.vcpu(i), y.vcpu(i)
        for rid in sorted(set(ra) | set(rb)):
            va, vb = ra.get(rid), rb.get(rid)
            if va != vb:
                diffs.append({"vcpu": i, "id": f"{rid:#018x}", "name": ids.short_name(rid),
                              "a": va, "b": vb})
    if a.json:
        dump({"equal": not diffs, "differences": diffs})
        return 0 if not diffs else 1

    def shown(v: int | None) -> str:
        return "absent" if v is None else f"{v:#x}"

    for d in diffs:
        if "vcpu" not in d:
            print(f"vCPU count: {d['a']} vs {d['b']}")
            continue
        print(f"vCPU {d['vcpu']} {d['name']} ({d['id']}): {shown(d['a'])} -> {shown(d['b'])}")
    print("identical" if not diffs else f"{len(diffs)} difference(s)")
    return 0 if not diffs else 1


def cmd_blob_preflight(a: argparse.Namespace) -> int:
    from ..migration import preflight
    from ..vcpu.sim import SimVm

    host = host_preset(a.host)
    blob = load_blob(a.file)
    vcpus = a.vcpus or blob.nr_vcpus
    if vcpus > MAX_VCPUS:  # checked before SimVm allocates anything
        raise UserError(f"{source_name(a.file)}: {blob.nr_vcpus} vCPUs; a simulated "
                        f"destination has at most {MAX_VCPUS} (give --vcpus)")
    vm = SimVm(vcpus, host=host)
    report = preflight(blob, vm.vcpus)
    if a.json:
        dump({"destination": f"simulated VM, host preset {a.host!r}", **report.as_json()})
    else:
        print(f"destination: simulated VM of {len(vm.vcpus)} vCPU(s), host preset {a.host!r}")
        print(report)
    return 0 if report.ok else 1


def add_parser(sub: Any) -> None:
    s = sub.add_parser("blob", help="migration blobs: show, diff, preflight",
                       description="Migration blobs, binary or JSON form (at most 16 MiB).")
    bsub = s.add_subparsers(dest="blob_command", metavar="ACTION", required=True)
    b = bsub.add_parser("show", help="print a blob (binary or JSON form)",
                        description="Print every vCPU's registers, or with --json the blob's "
                                    "JSON form (which every blob command reads back).")
    b.add_argument("file", help="blob file, binary or JSON, or - for stdin")
    b.add_argument("--all", action="store_true", help="also print registers that are zero")
    b.add_argument("--json", action="store_true",
                   help="print the blob's JSON form (format sdei-state/blob/1)")
    b.set_defaults(func=cmd_blob_show)
    b = bsub.add_parser("diff", help="compare two blobs register by register",
                        epilog="exit status: 0 identical, 1 different, 2 unusable input")
    b.add_argument("a", help="first blob file (binary or JSON), or - for stdin")
    b.add_argument("b", help="second blob file (binary or JSON)")
    b.add_argument("--json", action="store_true",
                   help="print the differences as one JSON document")
    b.set_defaults(func=cmd_blob_diff)
    b = bsub.add_parser("preflight", help="can this blob be restored on a destination?",
                        description="Check, without writing anything, whether the blob can be "
                                    "restored on a simulated VM of the given host preset.",
                        epilog="exit status: 0 it can, 1 it cannot (every problem is "
                               "printed), 2 unusable input")
    b.add_argument("file", help="blob file (binary or JSON), or - for stdin")
    b.add_argument("--host", default="sdei", metavar="PRESET",
                   help="destination host preset (default: sdei)")
    b.add_argument("--vcpus", type=int_arg(0, MAX_VCPUS, " (0: as many as the blob)"), default=0,
                   help=f"destination vCPUs, 1..{MAX_VCPUS} (default 0: as many as the blob)")
    b.add_argument("--json", action="store_true", help="print the report as one JSON document")
    b.set_defaults(func=cmd_blob_preflight)

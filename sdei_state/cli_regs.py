"""Register-side subcommands: ``regs``, ``decode``, ``blob show|diff|preflight``, ``vectors``.

Each prints a readable form by default and the same facts as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import BlobError, SdeiStateError


def _user_error(msg: str) -> SdeiStateError:
    from .cli import UserError

    return UserError(msg)


def _dump(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


# -- regs -----------------------------------------------------------------------------------

def _regs_rows(host_key: str) -> list[dict[str, Any]]:
    from .regs import firmware, ids, sdei

    try:
        host = firmware.PRESETS[host_key]
    except KeyError:
        raise _user_error(f"--host {host_key!r}: one of {', '.join(firmware.PRESETS)}") from None
    rows: list[dict[str, Any]] = []
    for rid in host.reg_ids:
        decl = firmware.declaration(rid)
        reset = host.reset_value(rid)
        rows.append({
            "id": f"{rid:#018x}", "name": ids.short_name(rid), "macro": ids.describe(rid),
            "group": "firmware", "reset": reset,
            "reset_meaning": firmware.decode_value(rid, reset),
            "fields": [{"name": n, "bits": f"bit[{b}]"} for b, n in decl.bits]
            + [{"name": n, "value": v} for v, n in decl.values],
            "stored": decl.stored,
        })
    for reg in sdei.SDEI_REGS:
        rows.append({
            "id": f"{reg.id:#018x}", "name": reg.name, "macro": ids.describe(reg.id),
            "group": "sdei", "reset": reg.reset,
            "reset_meaning": sdei.describe_value(reg.id, reg.reset),
            "fields": [{"name": f.name, "bits": f.bits} for f in reg.fields()],
            "stored": True,
        })
    return rows


def cmd_regs(a: argparse.Namespace) -> int:
    rows = _regs_rows(a.host)
    if a.json:
        _dump({"host": a.host, "registers": rows})
        return 0
    print(f"firmware and SDEI pseudo-registers of one vCPU (host preset {a.host!r}); "
          f"{len(rows)} registers")
    for r in rows:
        fields = ", ".join(f"{f['name']} {f['bits']}" if "bits" in f
                           else f"{f['name']}={f['value']:#x}" for f in r["fields"])
        print(f"{r['id']}  {r['name']:<24} reset {r['reset']:#x} ({r['reset_meaning']})"
              + ("" if r["stored"] else "  [check only, not stored]"))
        if fields:
            print(f"    {fields}")
    return 0


# -- decode ---------------------------------------------------------------------------------

def _decode_one(text: str, value: int | None) -> dict[str, Any]:
    from .regs import firmware, ids, sdei

    try:
        rid = ids.parse(text)
    except ValueError as e:
        raise _user_error(f"{text!r}: {e}") from None
    out: dict[str, Any] = {"input": text, "id": f"{rid:#018x}"}
    try:
        d = ids.decode(rid)
    except ids.InvalidRegId as e:
        out.update(valid=False, reason=e.reason)
        return out
    out.update(valid=True, name=ids.short_name(rid), macro=d.expr, size=d.nbytes,
               group=d.group.name, describe=ids.describe(rid))
    if value is not None:
        if sdei.is_sdei_id(rid):
            out["value"] = value
            out["meaning"] = sdei.describe_value(rid, value)
            out["problem"] = sdei.check_value(rid, value)
        elif firmware.is_firmware_reg(rid):
            out["value"] = value
            out["meaning"] = firmware.decode_value(rid, value)
    return out


def cmd_decode(a: argparse.Namespace) -> int:
    value: int | None = None
    if a.value is not None:
        try:
            value = int(a.value, 0)
        except ValueError:
            raise _user_error(f"--value {a.value!r} is not an integer") from None
    results = [_decode_one(t, value) for t in a.ids]
    if a.json:
        _dump(results)
    else:
        for r in results:
            if not r["valid"]:
                print(f"{r['id']}  invalid: {r['reason']}")
                continue
            print(f"{r['id']}  {r['describe']}")
            print(f"    group {r['group']}, {r['size']} bytes, name {r['name']}")
            if "meaning" in r:
                print(f"    value {r['value']:#x}: {r['meaning']}"
                      + (f"  (SET would give EINVAL: {r['problem']})" if r.get("problem")
                         else ""))
    return 0 if all(r["valid"] for r in results) else 1


# -- blob -----------------------------------------------------------------------------------

def _load_blob(path: str) -> Any:
    from .cli import _read_bytes
    from .migration import Blob

    data = _read_bytes(path)
    stripped = data.lstrip()
    try:
        if stripped.startswith(b"{"):
            return Blob.from_json(data)
        return Blob.from_bytes(data)
    except BlobError as e:
        raise BlobError(f"{path}: {e}") from None


def _blob_obj(blob: Any) -> dict[str, Any]:
    from .regs import ids

    obj: dict[str, Any] = blob.to_json_obj()
    obj["names"] = {f"{r:#018x}": ids.short_name(r) for r in blob.reg_ids}
    obj["size_bytes"] = len(blob.to_bytes())
    return obj


def cmd_blob_show(a: argparse.Namespace) -> int:
    from .regs import firmware, ids, sdei

    blob = _load_blob(a.file)
    if a.json:
        _dump(_blob_obj(blob))
        return 0
    size = len(blob.to_bytes())
    print(f"{a.file}: {blob.nr_vcpus} vCPU(s), {len(blob.reg_ids)} registers each, "
          f"{size} bytes ({size / max(blob.nr_vcpus, 1):.1f} bytes per vCPU)")
    for i in range(blob.nr_vcpus):
        print(f"vCPU {i}:")
        for rid, v in blob.vcpu(i).items():
            meaning = ""
            if sdei.is_sdei_id(rid):
                meaning = sdei.describe_value(rid, v)
            elif firmware.is_firmware_reg(rid):
                meaning = firmware.decode_value(rid, v)
            if a.all or v or meaning:
                print(f"  {ids.short_name(rid):<28} {v:#x}" + (f"  {meaning}" if meaning
                                                                  else ""))
    return 0


def cmd_blob_diff(a: argparse.Namespace) -> int:
    from .regs import ids

    x, y = _load_blob(a.a), _load_blob(a.b)
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
        _dump({"equal": not diffs, "differences": diffs})
    else:
        for d in diffs:
            if "vcpu" not in d:
                print(f"vCPU count: {d['a']} vs {d['b']}")
                continue

            def f(v: int | None) -> str:
                return "absent" if v is None else f"{v:#x}"

            print(f"vCPU {d['vcpu']} {d['name']} ({d['id']}): {f(d['a'])} -> {f(d['b'])}")
        print("identical" if not diffs else f"{len(diffs)} difference(s)")
    return 0 if not diffs else 1


def cmd_blob_preflight(a: argparse.Namespace) -> int:
    from .migration import preflight
    from .regs import firmware
    from .vcpu.sim import SimVm

    blob = _load_blob(a.file)
    try:
        host = firmware.PRESETS[a.host]
    except KeyError:
        raise _user_error(f"--host {a.host!r}: one of {', '.join(firmware.PRESETS)}") from None
    if a.vcpus < 0:
        raise _user_error(f"--vcpus {a.vcpus}: a destination needs at least one vCPU "
                          "(0 means as many as the blob)")
    vm = SimVm(a.vcpus or blob.nr_vcpus, host=host)
    report = preflight(blob, vm.vcpus)
    if a.json:
        _dump({"destination": f"simulated VM, host preset {a.host!r}", **report.as_json()})
    else:
        print(f"destination: simulated VM of {len(vm.vcpus)} vCPU(s), host preset {a.host!r}")
        print(report)
    return 0 if report.ok else 1


# -- vectors --------------------------------------------------------------------------------

def _vectors_dir(a: argparse.Namespace) -> Path:
    if a.dir:
        return Path(a.dir)
    here = Path(__file__).resolve().parent.parent / "vectors"
    if here.is_dir():
        return here
    cwd = Path.cwd() / "vectors"
    if cwd.is_dir():
        return cwd
    raise _user_error(f"no vectors directory: give --dir (looked at {here} and {cwd})")


def cmd_vectors_verify(a: argparse.Namespace) -> int:
    from .scenario.vectors import main_verify

    return main_verify(_vectors_dir(a))


def cmd_vectors_generate(a: argparse.Namespace) -> int:
    from .scenario.vectors import main_generate

    d = Path(a.dir) if a.dir else _vectors_dir(a)
    return main_generate(d)


def add_commands(sub: Any) -> None:
    s = sub.add_parser("regs", help="list the SDEI block and the firmware registers")
    s.add_argument("--json", action="store_true")
    s.add_argument("--host", default="sdei", help="host firmware preset (default: sdei)")
    s.set_defaults(func=cmd_regs)

    s = sub.add_parser("decode", help="decode register ids (hex, names or macro expressions)")
    s.add_argument("ids", nargs="+", metavar="ID")
    s.add_argument("--value", help="also decode this value of the register")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("blob", help="migration blobs: show, diff, preflight")
    bsub = s.add_subparsers(dest="blob_command", metavar="ACTION", required=True)
    b = bsub.add_parser("show", help="print a blob (binary or JSON form)")
    b.add_argument("file")
    b.add_argument("--all", action="store_true", help="also print registers that are zero")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_blob_show)
    b = bsub.add_parser("diff", help="compare two blobs register by register")
    b.add_argument("a")
    b.add_argument("b")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_blob_diff)
    b = bsub.add_parser("preflight", help="can this blob be restored on a destination?")
    b.add_argument("file")
    b.add_argument("--host", default="sdei", help="destination host preset (default: sdei)")
    b.add_argument("--vcpus", type=int, default=0, help="destination vCPUs (default: as blob)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_blob_preflight)

    s = sub.add_parser("vectors", help="migration round-trip vectors")
    vsub = s.add_subparsers(dest="vectors_command", metavar="ACTION", required=True)
    v = vsub.add_parser("verify", help="replay every vector and compare exactly")
    v.add_argument("--dir", help="vectors directory (default: the repository's vectors/)")
    v.set_defaults(func=cmd_vectors_verify)
    v = vsub.add_parser("generate", help="rewrite the vectors from the conformance scenarios")
    v.add_argument("--dir", help="vectors directory (default: the repository's vectors/)")
    v.set_defaults(func=cmd_vectors_generate)

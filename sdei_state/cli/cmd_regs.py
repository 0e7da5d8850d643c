"""``sdei-state regs`` and ``sdei-state decode``: the register ABI, read from the command line.

Each prints a readable form by default and the same facts as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import MAX_TEXT, UserError, dump, parse_int


def host_preset(name: str) -> Any:
    """The ``HostFirmware`` preset ``--host NAME`` means; ``UserError`` lists the names."""
    from ..regs import firmware

    try:
        return firmware.PRESETS[name]
    except KeyError:
        raise UserError(f"--host {name[:40]!r}: one of {', '.join(firmware.PRESETS)}") from None


def _regs_rows(host_key: str) -> list[dict[str, Any]]:
    from ..regs import firmware, ids, sdei

    host = host_preset(host_key)
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
        dump({"host": a.host, "registers": rows})
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


def _reg_id(text: str) -> int:
    """A register id from the command line: ASCII only (``int`` would take Unicode digits
    such as ``0x٦0...``), at most ``MAX_TEXT`` characters."""
    from ..regs import ids

    if len(text) > MAX_TEXT:
        raise UserError(f"{text[:40]!r}...: {len(text)} characters; a register id or name has "
                        f"at most {MAX_TEXT}")
    if not text.isascii():
        raise UserError(f"{text!r}: register ids and names are ASCII")
    try:
        return ids.parse(text)
    except ValueError as e:
        raise UserError(f"{text!r}: {e}") from None


def _decode_one(text: str, value: int | None) -> dict[str, Any]:
    from ..regs import firmware, ids, sdei

    rid = _reg_id(text)
    out: dict[str, Any] = {"input": text, "id": f"{rid:#018x}"}
    try:
        d = ids.decode_id(rid)
    except ids.InvalidRegId as e:
        out.update(valid=False, reason=e.reason)
        return out
    out.update(valid=True, name=ids.short_name(rid), macro=d.expr, size=d.nbytes,
               group=d.group.name, describe=ids.describe(rid))
    if value is not None:
        if value >> (8 * d.nbytes):
            raise UserError(f"--value {value:#x}: wider than {ids.short_name(rid)} "
                            f"({rid:#018x}), a {d.nbytes}-byte register")
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
        value = parse_int(a.value)
        if value is None or value < 0:
            raise UserError(f"--value {a.value[:40]!r}: not an unsigned integer (decimal, or "
                            "0x/0o/0b, ASCII)")
    results = [_decode_one(t, value) for t in a.ids]
    if a.json:
        dump(results)
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


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("regs", help="list the SDEI block and the firmware registers",
                       description="List the firmware and SDEI pseudo-registers of one vCPU "
                                   "with their ids, reset values and fields.")
    s.add_argument("--json", action="store_true", help="print the list as one JSON document")
    s.add_argument("--host", default="sdei", metavar="PRESET",
                   help="host firmware preset (default: sdei)")
    s.set_defaults(func=cmd_regs)

    s = sub.add_parser(
        "decode", help="decode register ids (hex, names or macro expressions)",
        description="Decode ONE_REG register ids given as numbers, names or macro expressions.",
        epilog="exit status: 0 every id is well formed, 1 one is malformed (its reason is "
               "printed), 2 unusable input (an unknown name, a value that does not fit)")
    s.add_argument("ids", nargs="+", metavar="ID",
                   help="0x6030000000140110, SDEI_EVENT_STATE(0), ARM64_SYS_REG(3,0,12,0,0), ...")
    s.add_argument("--value", metavar="N",
                   help="also decode this value of each register (an unsigned integer that "
                        "fits the register)")
    s.add_argument("--json", action="store_true", help="print the results as one JSON document")
    s.set_defaults(func=cmd_decode)

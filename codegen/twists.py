"""Rust for `twist`: each symmetry as an observation permutation and an action permutation.

The permutations are computed from the symmetry rules with the instance's params, so
they are right for overridden params too, and checked: a rule that sends a cell, a value
or an action out of range, or two of them onto one, is a fault naming its `.twl` line.
"""

from __future__ import annotations

from twisterl.dsl import ir

from .arith import as_usize, minus, plus, times
from .rust import RustWriter, at, local


def twist_lines(lowering, w: RustWriter) -> list[str]:
    env = lowering.env
    lines = ["twisterl_core::twist::fill_identity(obs);", "twisterl_core::twist::fill_identity(act);",
             "match twist {"]
    for k, sym in enumerate(env.symmetries):
        lines.append(f"{k} => {{ // symmetry `{sym.name}` (line {sym.span.line})")
        lines += _actions(lowering, w, sym)
        lines += _observation(lowering, w, sym)
        lines.append("}")
    lines += ["_ => {}", "}", "twisterl_core::twist::check_permutations(obs, act)"]
    return lines


def _actions(lowering, w: RustWriter, sym: ir.Symmetry) -> list[str]:
    env = lowering.env
    index = {a.name: d for d, a in enumerate(env.actions)}
    out = []
    for rule in sym.actions:
        src, dst = env.actions[index[rule.source]], env.actions[index[rule.target]]
        ds, dt = index[rule.source], index[rule.target]
        body = [f"let target = {_encode(w, dst, rule.targets, rule.span)};",
                f"act[base_s + local_s] = (base_t + target) as u32;"]
        loops = body
        for j in reversed(range(len(src.index_params))):
            p = src.index_params[j]
            var = local(rule.index_vars[j])
            loops = [f"for {var} in {w.expr(p.lo)}..{w.expr(p.hi)} {{"] + loops + ["local_s += 1;" if j == len(src.index_params) - 1 else "", "}"]
        out += ["{",
                f"let base_s: usize = self.counts[..{ds}].iter().sum();",
                f"let base_t: usize = self.counts[..{dt}].iter().sum();",
                "let mut local_s = 0usize;"]
        if src.index_params:
            out += loops
        else:
            out += body
        out += ["let _ = local_s;", "}"]
    return [line for line in out if line]


def _encode(w: RustWriter, action: ir.Action, targets, span) -> str:
    """The number of a family member within its family, from its index values (row-major)."""
    if not action.index_params:
        return "0usize"
    code = "0"
    for p, t in zip(action.index_params, targets):
        lo, hi = w.expr(p.lo), w.expr(p.hi)
        code = plus(times(code, minus(hi, lo)), minus(f"ops::range({w.expr(t)}, {lo}, {hi}, {at(span)})?", lo))
    return as_usize(code)


def _observation(lowering, w: RustWriter, sym: ir.Symmetry) -> list[str]:
    env = lowering.env
    cells = {c.array: c for c in sym.cells}
    scalars = {s.name: s for s in sym.scalars}
    out = ["let mut o = 0usize;"]
    for part in env.observation.parts:
        value = part.value.value if isinstance(part.value, ir.SeenBy) else part.value
        name = value.name if isinstance(value, ir.Ref) else None
        size = w.size(part.size)
        if name in cells:
            out += _cell_part(w, part, cells[name], value.type)
        elif name in scalars and part.encoding == "onehot":
            s = scalars[name]
            lo, width = w.expr(part.lo), w.size(part.width)
            out += [f"for v in 0..{width} {{",
                    f"let {local(s.name)}: i64 = {plus(lo, 'v as i64')};",
                    f"let t = ops::range({w.expr(s.value)}, {lo}, {plus(lo, width + ' as i64')}, {at(s.span)})?;",
                    f"obs[o + v] = ({plus('o', as_usize(minus('t', lo)))}) as u32;", "}"]
        out.append(f"o += {size};")
    out.append("let _ = o;")
    return out


def _cell_part(w: RustWriter, part: ir.ObsPart, cell: ir.CellMap, t) -> list[str]:
    dims = []
    tt = t
    while isinstance(tt, ir.ArrayType):
        dims.append(w.size(tt.size))
        tt = tt.elem
    names = [local(n) for n in cell.index_vars]
    src = f"({names[0]} as usize)"
    dst_parts = [f"ops::range({w.expr(e)}, 0, {d} as i64, {at(cell.span)})? as usize"
                 for e, d in zip(cell.targets, dims)]
    dst = "__d0"
    for k, d in enumerate(dims[1:], start=1):
        src = f"({src}) * {d} + {names[k]} as usize"
        dst = f"({dst}) * {d} + __d{k}"
    lines = [f"for {n} in 0..{d} as i64 {{" for n, d in zip(names, dims)]
    lines += [f"let __d{k} = {p};" for k, p in enumerate(dst_parts)]
    lines.append(f"let (src, dst) = ({src}, {dst});")
    if part.encoding in ("onehot", "planes") and part.lo is not None:
        lo, width = w.expr(part.lo), w.size(part.width)
        lines.append(f"for v in 0..{width} {{")
        if cell.value is not None:
            value = f"ops::range({w.expr(cell.value)}, {lo}, {plus(lo, width + ' as i64')}, {at(cell.span)})?"
            lines += [f"let {local(cell.value_var)}: i64 = {plus(lo, 'v as i64')};",
                      f"let tv = {as_usize(minus(value, lo))};"]
        else:
            lines.append("let tv = v;")
        if part.encoding == "planes":
            hw = f"{w.size(part.shape[1])} * {w.size(part.shape[2])}"
            lines.append(f"obs[o + v * {hw} + src] = (o + tv * {hw} + dst) as u32;")
        else:
            lines.append(f"obs[o + src * {width} + v] = (o + dst * {width} + tv) as u32;")
        lines.append("}")
    else:
        lines.append("obs[o + src] = (o + dst) as u32;")
    lines += ["}"] * len(dims)
    return lines

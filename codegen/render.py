"""Rust for the `render` block: a text picture, built into a `String`."""

from __future__ import annotations

import re

from twisterl.dsl import ir

from .rust import RustWriter, rust_str

_SPEC = re.compile(r"^([<>^]?)([0-9]*)(\.[0-9]+)?([dfeg%]?)$")


def render_lines(lowering, w: RustWriter) -> list[str]:
    lines = ["let mut text = String::new();"]
    for item in lowering.env.render:
        lines.append(f"// line {item.span.line}")
        if isinstance(item, ir.RenderGrid):
            lines += _grid(w, item)
        else:
            lines += _line(w, item)
    if not lowering.env.render:
        lines += _default_picture(lowering, w)
    lines.append("Ok(text)")
    return lines


def _glyph_of(w: RustWriter, g: ir.RenderGrid, v: str, t) -> str:
    code = f"{v}.to_string()" if not isinstance(t, ir.BoolType) else f"(if {v} {{ \"1\" }} else {{ \"0\" }}).to_string()"
    for glyph in reversed(g.glyphs):
        code = f"if {v} == {w.expr(glyph.key)} {{ ({w.expr(glyph.glyph)}).to_string() }} else {{ {code} }}"
    return code


def _grid(w: RustWriter, g: ir.RenderGrid) -> list[str]:
    arr = w.fresh("grid")
    out = [f"let {arr} = {w.value(g.array)};"]
    t = g.array.type
    scalar = t.elem.elem if g.width is None else t.elem
    if g.width is None:
        out += [f"let rows = {arr}.len();", f"let cols = if rows > 0 {{ {arr}[0].len() }} else {{ 0 }};",
                "let mut cells: Vec<String> = Vec::with_capacity(rows * cols);",
                "for r in 0..rows {", "for c in 0..cols {", f"let v = {arr}[r][c];",
                f"cells.push({_glyph_of(w, g, 'v', scalar)});", "}", "}"]
    else:
        out += [f"let cols = (({w.expr(g.width)}).max(1)) as usize;",
                f"let rows = {arr}.len().div_ceil(cols);",
                "let mut cells: Vec<String> = Vec::with_capacity(rows * cols);",
                "for i in 0..rows * cols {",
                f"if i < {arr}.len() {{ let v = {arr}[i]; cells.push({_glyph_of(w, g, 'v', scalar)}); }}"
                " else { cells.push(String::new()); }", "}"]
    for m in g.marks:
        r, c = w.fresh("r"), w.fresh("c")
        row = w.expr(m.row)
        out += [f"let {r} = {row};" if not (isinstance(m.row, ir.Lit) and m.row.value == -1)
                else f"let {r}: i64 = 0;",
                f"let {c} = {w.expr(m.col)};",
                f"if {r} >= 0 && ({r} as usize) < rows && {c} >= 0 && ({c} as usize) < cols {{",
                f"cells[{r} as usize * cols + {c} as usize] = ({w.expr(m.glyph)}).to_string();", "}"]
    out += ["let width = cells.iter().map(|s| s.chars().count()).max().unwrap_or(1);",
            "for r in 0..rows {",
            "let row: Vec<String> = (0..cols).map(|c| format!(\"{:<width$}\", cells[r * cols + c], width = width)).collect();",
            "text.push_str(row.join(\" \").trim_end());", "text.push('\\n');", "}"]
    return out


def _line(w: RustWriter, line: ir.RenderLine) -> list[str]:
    fmt, args = [], []
    for seg in line.segments:
        if isinstance(seg, str):
            fmt.append(seg.replace("{", "{{").replace("}", "}}"))
            continue
        t = seg.value.type
        value = w.expr(seg.value)
        if isinstance(t, ir.EnumType):
            arms = " ".join(f"{w.enum_const(t.name, v)} => {rust_str(v)}," for v in t.variants)
            value = f"match {value} {{ {arms} _ => \"?\" }}"
        m = _SPEC.match(seg.format)
        align, width, prec, kind = m.groups() if m else ("", "", "", "")
        if kind == "%":
            value = f"({value}) * 100.0"
        spec = f"{align}{width}{prec or ''}{'e' if kind == 'e' else ''}"
        fmt.append("{" + (":" + spec if spec else "") + "}" + ("%" if kind == "%" else ""))
        args.append(value)
    joined = rust_str("".join(fmt))
    call = f"format!({joined}{', ' if args else ''}{', '.join(args)})"
    return [f"text.push_str(&{call});", "text.push('\\n');"]


def _default_picture(lowering, w: RustWriter) -> list[str]:
    """Without a `render` block: one line per scalar state variable."""
    out = []
    for v in lowering.env.state:
        if isinstance(v.type, ir.ArrayType):
            out.append(f"text.push_str(&format!(\"{v.name} = {{:?}}\\n\", self.state.{_ident(v.name)}));")
        else:
            out.append(f"text.push_str(&format!(\"{v.name} = {{}}\\n\", self.state.{_ident(v.name)}));")
    return out


def _ident(name: str) -> str:
    from .rust import ident
    return ident(name)

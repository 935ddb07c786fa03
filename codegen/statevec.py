"""Rust for `get_state` / `set_state`: the state as one flat vector of numbers.

Layout: each state variable in declaration order, arrays flattened row-major, then
`player` and `steps`. Ints, bools and enums travel as exact f64 values; `set_state`
checks that each is integral and in its declared range.
"""

from __future__ import annotations

from twisterl.dsl import ir

from .rust import RustWriter, at, ident


def _walk(w: RustWriter, t, place: str, leaf) -> list[str]:
    if isinstance(t, ir.ArrayType):
        i = w.fresh("i")
        return [f"for {i} in 0..{place}.len() {{"] + _walk(w, t.elem, f"{place}[{i}]", leaf) + ["}"]
    return leaf(place, t)


def _count(w: RustWriter, t, place: str) -> str:
    if isinstance(t, ir.ArrayType):
        if isinstance(t.elem, ir.ArrayType):
            return f"{place}.iter().map(|row| {_count(w, t.elem, 'row')}).sum::<usize>()"
        return f"{place}.len()"
    return "1"


def state_vector_code(lowering, w: RustWriter) -> tuple[list[str], list[str], str, list[str]]:
    """`get_state` and `set_state` bodies, the `state_len` expression, `state_lengths` lines."""
    get = ["let mut n = 0usize;"]
    set_ = ["if values.len() != self.state_len() { return Err(Fault::new(FaultKind::BadState, at(0, 0), "
            "values.len() as i64, self.state_len() as i64, 0)); }", "let mut n = 0usize;"]
    counts = []
    for v in lowering.env.state:
        place = f"self.state.{ident(v.name)}"
        counts.append(_count(w, v.type, place))

        def put(p, t):
            if isinstance(t, ir.BoolType):
                return [f"out[n] = if {p} {{ 1.0 }} else {{ 0.0 }}; n += 1;"]
            return [f"out[n] = {p} as f64; n += 1;"]

        def take(p, t, v=v):
            if isinstance(t, ir.BoolType):
                return [f"{p} = ops::state_int(values[n], 0, 2, {at(v.span)})? == 1; n += 1;"]
            if isinstance(t, ir.FloatType):
                return [f"{p} = values[n]; n += 1;"]
            if isinstance(t, ir.EnumType):
                return [f"{p} = ops::state_int(values[n], 0, {len(t.variants)}, {at(v.span)})?; n += 1;"]
            if isinstance(t, ir.IntType) and t.bounded:
                return [f"{p} = ops::state_int(values[n], {w.expr(t.lo)}, {w.expr(t.hi)}, {at(v.span)})?; n += 1;"]
            return [f"{p} = ops::state_int(values[n], i64::MIN, i64::MAX, {at(v.span)})?; n += 1;"]

        get += _walk(w, v.type, place, put)
        set_ += _walk(w, v.type, place, take)
    get += ["out[n] = self.state.player as f64;", "out[n + 1] = self.state.steps as f64;"]
    set_ += [f"self.state.player = ops::state_int(values[n], 0, {lowering.env.players}, at(0, 0))?;",
             "self.state.steps = ops::state_int(values[n + 1], 0, i64::MAX, at(0, 0))?;", "Ok(())"]
    length = " + ".join(counts + ["2"])
    lengths = [f"out[{k}] = {c};" for k, c in enumerate(counts)]
    return get, set_, length, lengths

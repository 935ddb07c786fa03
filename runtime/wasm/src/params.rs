//! Params by name: the generated binding crate lists the params an env declares (their
//! types, ranges and defaults, from the checked IR); a host gives some of them by name,
//! and gets the full vector or a message naming the param that is wrong.

use twisterl_core::param::Param;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamKind {
    /// An int in `lo..hi` (hi excluded).
    Int { lo: Option<f64>, hi: Option<f64> },
    /// A float in `[lo, hi]`.
    Float { lo: Option<f64>, hi: Option<f64> },
    Bool,
    /// An enum, given by variant name or number.
    Enum(&'static [&'static str]),
}

impl ParamKind {
    /// A checked value of this kind as the env takes it: ints as ints, floats as floats.
    fn param(&self, value: f64) -> Param {
        match self {
            ParamKind::Float { .. } => Param::float(value),
            _ => Param::int(value as i64),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub default: f64,
}

/// A value as a host gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Num(f64),
    Bool(bool),
    Text(String),
}

impl ParamValue {
    fn describe(&self) -> String {
        match self {
            ParamValue::Num(v) => format!("the number {}", number(*v)),
            ParamValue::Bool(b) => format!("the bool {b}"),
            ParamValue::Text(s) => format!("the string \"{s}\""),
        }
    }
}

/// A number for a message, without pulling float formatting into the module: whole
/// numbers exactly, others to six decimals.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v.abs() >= 1e15 {
        return if v > 0.0 { "a number above 10^15" } else { "a number below -10^15" }.to_string();
    }
    if v.fract() == 0.0 {
        return format!("{}", v as i64);
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let scaled = (v.abs() * 1e6).round() as u64;
    let text = format!("{sign}{}.{:06}", scaled / 1_000_000, scaled % 1_000_000);
    text.trim_end_matches('0').to_string()
}

/// The full param vector: `given` values by name, defaults for the rest.
pub fn param_vector(env: &str, specs: &[ParamSpec], given: &[(String, ParamValue)]) -> Result<Vec<Param>, String> {
    for (name, _) in given {
        if !specs.iter().any(|s| s.name == name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(format!("{env} has no param `{name}` (its params: {known})"));
        }
    }
    specs
        .iter()
        .map(|spec| match given.iter().rev().find(|(n, _)| n == spec.name) {
            Some((_, v)) => param_value(env, spec, v).map(|x| spec.kind.param(x)),
            None => Ok(spec.kind.param(spec.default)),
        })
        .collect()
}

fn param_value(env: &str, spec: &ParamSpec, v: &ParamValue) -> Result<f64, String> {
    let name = spec.name;
    let bad = |what: &str| Err(format!("param `{name}` of {env} must be {what}, not {}", v.describe()));
    match (&spec.kind, v) {
        (ParamKind::Enum(variants), ParamValue::Text(s)) => match variants.iter().position(|x| *x == s.as_str()) {
            Some(k) => Ok(k as f64),
            None => bad(&format!("one of {}", variants.join(", "))),
        },
        (ParamKind::Enum(variants), ParamValue::Num(x)) if x.fract() == 0.0 && *x >= 0.0 && (*x as usize) < variants.len() => {
            Ok(*x)
        }
        (ParamKind::Enum(variants), _) => bad(&format!("one of {}", variants.join(", "))),
        (ParamKind::Bool, ParamValue::Bool(b)) => Ok(*b as u8 as f64),
        (ParamKind::Bool, _) => bad("a bool"),
        (ParamKind::Int { lo, hi }, ParamValue::Num(x)) => {
            if x.fract() != 0.0 || !x.is_finite() {
                return bad("an int");
            }
            if lo.is_some_and(|lo| *x < lo) || hi.is_some_and(|hi| *x >= hi) {
                return bad(&format!("in {}..{} (hi excluded)", show(*lo), show(*hi)));
            }
            Ok(*x)
        }
        (ParamKind::Int { .. }, _) => bad("an int"),
        (ParamKind::Float { lo, hi }, ParamValue::Num(x)) => {
            if x.is_nan() || lo.is_some_and(|lo| *x < lo) || hi.is_some_and(|hi| *x > hi) {
                return bad(&format!("in [{}, {}]", show(*lo), show(*hi)));
            }
            Ok(*x)
        }
        (ParamKind::Float { .. }, _) => bad("a number"),
    }
}

fn show(bound: Option<f64>) -> String {
    bound.map(number).unwrap_or_else(|| "?".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec { name: "size", kind: ParamKind::Int { lo: Some(2.0), hi: Some(9.0) }, default: 3.0 },
        ParamSpec { name: "slip", kind: ParamKind::Bool, default: 1.0 },
        ParamSpec { name: "mode", kind: ParamKind::Enum(&["easy", "hard"]), default: 1.0 },
        ParamSpec { name: "p", kind: ParamKind::Float { lo: Some(0.0), hi: Some(1.0) }, default: 0.5 },
    ];

    #[test]
    fn defaults_fill_the_rest() {
        let v = param_vector("P", SPECS, &[("size".into(), ParamValue::Num(4.0))]).unwrap();
        assert_eq!(v, vec![Param::int(4), Param::int(1), Param::int(1), Param::float(0.5)]);
        let v = param_vector("P", SPECS, &[("mode".into(), ParamValue::Text("easy".into()))]).unwrap();
        assert_eq!(v, vec![Param::int(3), Param::int(1), Param::int(0), Param::float(0.5)]);
    }

    #[test]
    fn errors_name_the_param() {
        let e = param_vector("P", SPECS, &[("sise".into(), ParamValue::Num(4.0))]).unwrap_err();
        assert!(e.contains("no param `sise`") && e.contains("size, slip, mode, p"), "{e}");
        let e = param_vector("P", SPECS, &[("size".into(), ParamValue::Num(12.0))]).unwrap_err();
        assert!(e.contains("`size`") && e.contains("2..9"), "{e}");
        let e = param_vector("P", SPECS, &[("slip".into(), ParamValue::Num(1.0))]).unwrap_err();
        assert!(e.contains("a bool"), "{e}");
        let e = param_vector("P", SPECS, &[("p".into(), ParamValue::Num(1.25))]).unwrap_err();
        assert!(e.contains("1.25") && e.contains("[0, 1]"), "{e}");
    }

    #[test]
    fn numbers_read_well_without_float_formatting() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-0.125), "-0.125");
        assert_eq!(number(1.0 / 3.0), "0.333333");
        assert_eq!(number(f64::NAN), "NaN");
    }
}

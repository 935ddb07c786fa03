//! Params by name: the env's spec says which params exist, their types, ranges and
//! defaults; a host gives some of them by name, and gets the full vector or a message
//! naming the param that is wrong.

use crate::json::Json;

#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    Int { lo: Option<f64>, hi: Option<f64> },
    Float { lo: Option<f64>, hi: Option<f64> },
    Bool,
    Enum(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
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
            ParamValue::Num(v) => format!("the number {v}"),
            ParamValue::Bool(b) => format!("the bool {b}"),
            ParamValue::Text(s) => format!("the string {s:?}"),
        }
    }
}

/// The params an env declares, in declaration order, read from its JSON spec.
pub fn param_specs(spec: &Json) -> Vec<ParamSpec> {
    let mut out = Vec::new();
    for p in spec.get("params").map(Json::as_array).unwrap_or(&[]) {
        let name = p.get("name").and_then(Json::as_str).unwrap_or("").to_string();
        let ty = p.get("type").and_then(Json::as_str).unwrap_or("");
        let lo = p.get("lo").and_then(Json::as_f64);
        let hi = p.get("hi").and_then(Json::as_f64);
        let kind = if let Some(variants) = ty.strip_prefix("enum:") {
            ParamKind::Enum(variants.split(',').map(str::to_string).collect())
        } else if ty == "bool" {
            ParamKind::Bool
        } else if ty == "int" {
            ParamKind::Int { lo, hi }
        } else {
            ParamKind::Float { lo, hi }
        };
        let default = match p.get("default") {
            Some(Json::Num(v)) => *v,
            Some(Json::Bool(b)) => *b as u8 as f64,
            Some(Json::Str(s)) => match &kind {
                ParamKind::Enum(vs) => vs.iter().position(|v| v == s).unwrap_or(0) as f64,
                _ => 0.0,
            },
            _ => 0.0,
        };
        out.push(ParamSpec { name, kind, default });
    }
    out
}

/// The full param vector: `given` values by name, defaults for the rest.
pub fn param_vector(env: &str, specs: &[ParamSpec], given: &[(String, ParamValue)]) -> Result<Vec<f64>, String> {
    for (name, _) in given {
        if !specs.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(format!("{env} has no param `{name}` (its params: {known})"));
        }
    }
    specs
        .iter()
        .map(|spec| match given.iter().rev().find(|(n, _)| n == &spec.name) {
            Some((_, v)) => param_value(env, spec, v),
            None => Ok(spec.default),
        })
        .collect()
}

fn param_value(env: &str, spec: &ParamSpec, v: &ParamValue) -> Result<f64, String> {
    let name = &spec.name;
    let bad = |what: &str| Err(format!("param `{name}` of {env} must be {what}, not {}", v.describe()));
    match (&spec.kind, v) {
        (ParamKind::Enum(variants), ParamValue::Text(s)) => match variants.iter().position(|x| x == s) {
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
    bound.map(|b| b.to_string()).unwrap_or_else(|| "?".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<ParamSpec> {
        let spec = Json::parse(
            r#"{"params":[{"name":"size","type":"int","default":3,"lo":2,"hi":9},
                {"name":"slip","type":"bool","default":true,"lo":null,"hi":null},
                {"name":"mode","type":"enum:easy,hard","default":"hard","lo":null,"hi":null}]}"#,
        )
        .unwrap();
        param_specs(&spec)
    }

    #[test]
    fn defaults_fill_the_rest() {
        let v = param_vector("P", &specs(), &[("size".into(), ParamValue::Num(4.0))]).unwrap();
        assert_eq!(v, vec![4.0, 1.0, 1.0]);
        let v = param_vector("P", &specs(), &[("mode".into(), ParamValue::Text("easy".into()))]).unwrap();
        assert_eq!(v, vec![3.0, 1.0, 0.0]);
    }

    #[test]
    fn errors_name_the_param() {
        let e = param_vector("P", &specs(), &[("sise".into(), ParamValue::Num(4.0))]).unwrap_err();
        assert!(e.contains("no param `sise`") && e.contains("size, slip, mode"), "{e}");
        let e = param_vector("P", &specs(), &[("size".into(), ParamValue::Num(12.0))]).unwrap_err();
        assert!(e.contains("`size`") && e.contains("2..9"), "{e}");
        let e = param_vector("P", &specs(), &[("slip".into(), ParamValue::Num(1.0))]).unwrap_err();
        assert!(e.contains("a bool"), "{e}");
    }
}

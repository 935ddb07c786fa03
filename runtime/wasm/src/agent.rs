//! A bundled policy: read from a safetensors file written by `twisterl export`, run with
//! the runtime core's forward pass and masked sampling.
//!
//! The file holds each part of the network (`trunk`, `policy_head`, `value_head`) as a
//! list of layers. Its metadata names the layer kinds in order, for example
//! `"trunk": "linear,relu,linear,relu"`, and the tensors are `trunk.0.weight` (torch's
//! `[out, in]` layout), `trunk.0.bias`, `trunk.k.gamma`/`beta` for a LayerNorm, whose
//! epsilon is the metadata entry `trunk.k.eps`.

use std::collections::BTreeMap;

use twisterl_core::policy::{sample_masked, Activation, Input, Layer, Policy, Workspace};
use twisterl_core::rng::Rng;

use crate::json::{quote, Json};

/// The format tag `twisterl export` writes into the file's metadata.
pub const FORMAT: &str = "twisterl-policy-v1";

/// A policy and the buffers and random stream it acts with.
#[derive(Debug)]
pub struct Agent {
    pub policy: Policy,
    ws: Workspace,
    logits: Vec<f32>,
    value: [f32; 1],
    rng: Rng,
    /// The metadata of the file it was read from (env name, training difficulty...).
    pub meta: BTreeMap<String, String>,
}

impl Clone for Agent {
    fn clone(&self) -> Agent {
        Agent::new(self.policy.clone(), self.meta.clone())
    }
}

struct Tensor<'a> {
    shape: Vec<usize>,
    data: &'a [u8],
}

impl Agent {
    pub fn new(policy: Policy, meta: BTreeMap<String, String>) -> Agent {
        let n = policy.num_actions;
        Agent { policy, ws: Workspace::default(), logits: vec![0.0; n], value: [0.0], rng: Rng::new(0, u64::MAX), meta }
    }

    /// Read a policy file; its first layer says how many observation values it reads.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Agent, String> {
        let (meta, tensors) = read_safetensors(bytes)?;
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(format!("this is not a twisterl policy file (its metadata has no format \"{FORMAT}\")"));
        }
        let mut parts: Vec<Vec<Layer>> = Vec::new();
        for part in ["trunk", "policy_head", "value_head"] {
            let kinds = meta.get(part).ok_or_else(|| format!("the policy file does not describe its {part}"))?;
            let mut layers = Vec::new();
            for (k, kind) in kinds.split(',').filter(|s| !s.is_empty()).enumerate() {
                layers.push(read_layer(part, k, kind, &meta, &tensors)?);
            }
            parts.push(layers);
        }
        let value_head = parts.pop().unwrap_or_default();
        let policy_head = parts.pop().unwrap_or_default();
        let trunk = parts.pop().unwrap_or_default();
        let obs_size = match trunk.first() {
            Some(Layer::Linear { inputs, .. }) => *inputs,
            _ => return Err("the policy's first layer must be linear".to_string()),
        };
        let policy = Policy::new(obs_size, trunk, policy_head, value_head)
            .map_err(|e| format!("the policy file is inconsistent: {e}"))?;
        Ok(Agent::new(policy, meta))
    }

    /// Whether the policy can play an env with these sizes; the error says why not.
    pub fn check_fits(&self, obs_size: usize, num_actions: usize) -> Result<(), String> {
        if self.policy.inputs != obs_size {
            return Err(format!("the policy reads observations of {} values, but this env has {obs_size} \
                                (were its params different in training?)", self.policy.inputs));
        }
        if self.policy.num_actions != num_actions {
            return Err(format!("the policy chooses among {} actions, but this env has {num_actions}",
                               self.policy.num_actions));
        }
        Ok(())
    }

    /// The file's metadata as a JSON object of strings.
    pub fn meta_json(&self) -> String {
        let entries: Vec<String> = self.meta.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v))).collect();
        format!("{{{}}}", entries.join(","))
    }

    pub fn reseed(&mut self, seed: u64) {
        self.rng = Rng::new(seed, u64::MAX);
    }

    /// The logits and the value for one dense observation.
    pub fn evaluate(&mut self, obs: &[f32]) -> Result<(&[f32], f32), String> {
        if obs.len() != self.policy.inputs {
            return Err(format!("the policy reads {} observation values, not {}", self.policy.inputs, obs.len()));
        }
        let input = Input::Dense { x: obs, width: obs.len() };
        self.policy.forward(input, 1, &mut self.logits, &mut self.value, &mut self.ws);
        Ok((&self.logits, self.value[0]))
    }

    /// An action for one observation: the most likely legal one, or a draw.
    pub fn act(&mut self, obs: &[f32], mask: &[bool], deterministic: bool) -> Result<usize, String> {
        if mask.len() != self.policy.num_actions {
            return Err(format!("the mask has {} entries, but the policy has {} actions", mask.len(),
                               self.policy.num_actions));
        }
        if !mask.iter().any(|&m| m) {
            return Err("no action is legal in this state".to_string());
        }
        self.evaluate(obs)?;
        let (action, _) = sample_masked(&self.logits, mask, &mut self.rng, deterministic);
        Ok(action)
    }
}

fn read_layer(part: &str, k: usize, kind: &str, meta: &BTreeMap<String, String>,
              tensors: &BTreeMap<String, Tensor<'_>>) -> Result<Layer, String> {
    let tensor = |name: &str| -> Result<Vec<f32>, String> {
        let key = format!("{part}.{k}.{name}");
        let t = tensors.get(&key).ok_or_else(|| format!("the policy file has no tensor {key}"))?;
        Ok(t.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    match kind {
        "linear" => {
            let key = format!("{part}.{k}.weight");
            let shape = tensors.get(&key).map(|t| t.shape.clone()).unwrap_or_default();
            if shape.len() != 2 {
                return Err(format!("{key} must be a matrix [outputs, inputs]"));
            }
            Layer::linear_from_torch(&tensor("weight")?, &tensor("bias")?, shape[1], shape[0])
                .map_err(|e| format!("{part} layer {k}: {e}"))
        }
        "relu" => Ok(Layer::Act(Activation::Relu)),
        "tanh" => Ok(Layer::Act(Activation::Tanh)),
        "gelu_tanh" => Ok(Layer::Act(Activation::GeluTanh)),
        "layernorm" => {
            let eps = meta
                .get(&format!("{part}.{k}.eps"))
                .and_then(|e| e.parse::<f32>().ok())
                .ok_or_else(|| format!("{part} layer {k}: the LayerNorm has no epsilon"))?;
            Ok(Layer::LayerNorm { gamma: tensor("gamma")?, beta: tensor("beta")?, eps })
        }
        other => Err(format!("{part} layer {k} is a `{other}`, which the WebAssembly runtime cannot run")),
    }
}

/// The metadata and the F32 tensors of a safetensors file, checked against its length.
fn read_safetensors(bytes: &[u8]) -> Result<(BTreeMap<String, String>, BTreeMap<String, Tensor<'_>>), String> {
    let corrupt = |why: &str| format!("the policy file is not a valid safetensors file: {why}");
    if bytes.len() < 8 {
        return Err(corrupt("it is shorter than its header"));
    }
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
    if header_len > (bytes.len() - 8) as u64 {
        return Err(corrupt("its header runs past the end of the file"));
    }
    let header_end = 8 + header_len as usize;
    let text = std::str::from_utf8(&bytes[8..header_end]).map_err(|_| corrupt("its header is not UTF-8"))?;
    let header = Json::parse(text).map_err(|e| corrupt(&e))?;
    let entries = header.as_object().ok_or_else(|| corrupt("its header is not a JSON object"))?;
    let data = &bytes[header_end..];
    let mut meta = BTreeMap::new();
    let mut tensors = BTreeMap::new();
    for (name, entry) in entries {
        if name == "__metadata__" {
            for (k, v) in entry.as_object().into_iter().flatten() {
                meta.insert(k.clone(), v.as_str().unwrap_or("").to_string());
            }
            continue;
        }
        if entry.get("dtype").and_then(Json::as_str) != Some("F32") {
            return Err(format!("tensor {name} is not float32"));
        }
        let shape: Vec<usize> = entry.get("shape").map(Json::as_array).unwrap_or(&[]).iter()
            .map(|d| d.as_f64().unwrap_or(0.0) as usize).collect();
        let offsets: Vec<usize> = entry.get("data_offsets").map(Json::as_array).unwrap_or(&[]).iter()
            .map(|d| d.as_f64().unwrap_or(-1.0) as usize).collect();
        let count: usize = shape.iter().product();
        match offsets[..] {
            [start, end] if start <= end && end <= data.len() && end - start == count * 4 => {
                tensors.insert(name.clone(), Tensor { shape, data: &data[start..end] });
            }
            _ => return Err(corrupt(&format!("tensor {name} has bad data offsets"))),
        }
    }
    Ok((meta, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file in the layout `twisterl export` writes.
    fn file(tensors: &[(&str, Vec<usize>, Vec<f32>)], meta: &[(&str, &str)]) -> Vec<u8> {
        let mut header = String::from("{\"__metadata__\":{");
        header += &meta.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect::<Vec<_>>().join(",");
        header += "}";
        let mut data = Vec::new();
        for (name, shape, values) in tensors {
            let start = data.len();
            for v in values {
                data.extend_from_slice(&v.to_le_bytes());
            }
            let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            header += &format!(",\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{start},{}]}}",
                               shape.join(","), data.len());
        }
        header += "}";
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    fn tiny() -> Vec<u8> {
        file(
            &[
                ("trunk.0.weight", vec![2, 3], vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
                ("trunk.0.bias", vec![2], vec![0.0, 0.0]),
                ("policy_head.0.weight", vec![2, 2], vec![1.0, 0.0, 0.0, -1.0]),
                ("policy_head.0.bias", vec![2], vec![0.0, 0.5]),
                ("value_head.0.weight", vec![1, 2], vec![1.0, 1.0]),
                ("value_head.0.bias", vec![1], vec![0.0]),
            ],
            &[("format", FORMAT), ("trunk", "linear,relu"), ("policy_head", "linear"), ("value_head", "linear")],
        )
    }

    #[test]
    fn reads_and_runs_a_policy_file() {
        let mut agent = Agent::from_safetensors(&tiny()).unwrap();
        agent.check_fits(3, 2).unwrap();
        let (logits, value) = agent.evaluate(&[2.0, 1.0, 0.0]).unwrap();
        assert_eq!(logits, &[2.0, -0.5]);
        assert_eq!(value, 3.0);
        assert_eq!(agent.act(&[2.0, 1.0, 0.0], &[true, true], true).unwrap(), 0);
        assert_eq!(agent.act(&[2.0, 1.0, 0.0], &[false, true], true).unwrap(), 1);
        assert!(agent.act(&[2.0, 1.0, 0.0], &[false, false], true).is_err());
    }

    #[test]
    fn bad_files_are_errors() {
        let agent = Agent::from_safetensors(&tiny()).unwrap();
        assert!(agent.check_fits(4, 2).unwrap_err().contains("3 values"));
        assert!(agent.check_fits(3, 5).unwrap_err().contains("2 actions"));
        let mut cut = tiny();
        cut.truncate(cut.len() - 4);
        assert!(Agent::from_safetensors(&cut).unwrap_err().contains("offsets"));
        assert!(Agent::from_safetensors(b"nonsense").is_err());
        assert!(Agent::from_safetensors(&[]).is_err());
    }
}

//! A bundled policy: read from a safetensors file written by `twisterl export`, run with
//! the runtime core's forward pass and masked sampling (or, for continuous actions, a
//! diagonal Gaussian around the policy head's means).
//!
//! The file holds each part of the network (`trunk`, `policy_head`, `value_head`) as a
//! list of layers. Its metadata names the layer kinds in order, for example
//! `"trunk": "linear,relu,residual,relu"`, and the tensors of layer `k` of a part are named
//! `PART.k.NAME`:
//!
//! | kind | tensors | metadata |
//! |---|---|---|
//! | `linear` | `weight` (torch's `[out, in]`), `bias` | |
//! | `layernorm` | `gamma`, `beta` | `PART.k.eps` |
//! | `conv2d` | `weight` (`[out, in, kh, kw]`), `bias` | `PART.k.stride`, `.padding`, `.input`: "a,b" |
//! | `residual` | its body's, as the part `PART.k` | `PART.k`: the body's kinds |
//! | `relu`, `tanh`, `gelu_tanh` | | |
//!
//! `inputs` (metadata) is how many observation values the network reads (else its first
//! layer, which must then be linear, says); a `log_std` tensor makes it a Gaussian policy
//! over continuous action values.

use std::collections::BTreeMap;

use twisterl_core::policy::{sample_masked, Activation, Conv2d, Input, Layer, Policy, Workspace};
use twisterl_core::rng::Rng;

use crate::json::{quote, Json};

/// The format tag `twisterl export` writes into the file's metadata.
pub const FORMAT: &str = "twisterl-policy-v1";

/// A policy and the buffers and random stream it acts with.
#[derive(Debug)]
pub struct Agent {
    pub policy: Policy,
    /// A Gaussian policy's log standard deviation per action value.
    pub log_std: Option<Vec<f32>>,
    ws: Workspace,
    logits: Vec<f32>,
    value: [f32; 1],
    rng: Rng,
    /// The metadata of the file it was read from (env name, training difficulty...).
    pub meta: BTreeMap<String, String>,
}

impl Clone for Agent {
    fn clone(&self) -> Agent {
        let mut agent = Agent::new(self.policy.clone(), self.meta.clone());
        agent.log_std.clone_from(&self.log_std);
        agent
    }
}

struct Tensor<'a> {
    shape: Vec<usize>,
    data: &'a [u8],
}

impl Agent {
    pub fn new(policy: Policy, meta: BTreeMap<String, String>) -> Agent {
        let n = policy.num_actions;
        Agent { policy, log_std: None, ws: Workspace::default(), logits: vec![0.0; n], value: [0.0],
                rng: Rng::new(0, u64::MAX), meta }
    }

    /// Read a policy file; its first layer says how many observation values it reads.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Agent, String> {
        let (meta, tensors) = read_safetensors(bytes)?;
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(format!("this is not a twisterl policy file (its metadata has no format \"{FORMAT}\")"));
        }
        let mut parts = Vec::new();
        for part in ["trunk", "policy_head", "value_head"] {
            parts.push(read_part(part, &meta, &tensors)?);
        }
        let value_head = parts.pop().unwrap_or_default();
        let policy_head = parts.pop().unwrap_or_default();
        let trunk = parts.pop().unwrap_or_default();
        let obs_size = match (meta.get("inputs"), trunk.first()) {
            (Some(n), _) => n.parse::<usize>().map_err(|_| format!("the policy file's `inputs` is {n:?}, not a count"))?,
            (None, Some(Layer::Linear { inputs, .. })) => *inputs,
            (None, _) => return Err("the policy file does not say how many inputs it reads".to_string()),
        };
        let policy = Policy::new(obs_size, trunk, policy_head, value_head)
            .map_err(|e| format!("the policy file is inconsistent: {e}"))?;
        let log_std = match tensors.get("log_std") {
            Some(t) if t.shape != [policy.num_actions] => {
                return Err(format!("log_std must have one value per action value ({})", policy.num_actions));
            }
            Some(t) => Some(floats(t)),
            None => None,
        };
        let mut agent = Agent::new(policy, meta);
        agent.log_std = log_std;
        Ok(agent)
    }

    /// This policy as a policy file, with its metadata.
    pub fn to_safetensors(&self) -> Vec<u8> {
        write_safetensors(&self.policy, self.log_std.as_deref(), &self.meta)
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

    /// Continuous action values for one observation (a Gaussian policy): the means, or a
    /// draw around them with the policy's standard deviations.
    pub fn act_values(&mut self, obs: &[f32], deterministic: bool) -> Result<Vec<f64>, String> {
        let log_std = self.log_std.clone().ok_or("this policy chooses action numbers, not action values")?;
        self.evaluate(obs)?;
        Ok(self.logits.iter().zip(&log_std).map(|(&mean, ls)| {
            let z = if deterministic { 0.0 } else { self.rng.normal() as f32 };
            (mean + ls.exp() * z) as f64
        }).collect())
    }
}

/// A policy file (the format [`Agent::from_safetensors`] reads) for `policy`, with its
/// `log_std` for a Gaussian one and the metadata `meta` (the format and the layer kinds are
/// filled in).
pub fn write_safetensors(policy: &Policy, log_std: Option<&[f32]>, meta: &BTreeMap<String, String>) -> Vec<u8> {
    let mut meta = meta.clone();
    meta.insert("format".into(), FORMAT.into());
    meta.insert("inputs".into(), policy.inputs.to_string());
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (part, layers) in [("trunk", &policy.trunk), ("policy_head", &policy.policy_head),
                           ("value_head", &policy.value_head)] {
        write_part(part, layers, &mut meta, &mut tensors);
    }
    if let Some(ls) = log_std {
        tensors.push(("log_std".into(), vec![ls.len()], ls.to_vec()));
    }
    let mut header: Vec<String> = vec![format!(
        "\"__metadata__\":{{{}}}",
        meta.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v))).collect::<Vec<_>>().join(",")
    )];
    let mut data = Vec::new();
    for (name, shape, values) in &tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        header.push(format!("{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{start},{}]}}", quote(name),
                            dims.join(","), data.len()));
    }
    let mut text = format!("{{{}}}", header.join(","));
    // The data starts 8-byte aligned, as the safetensors writers do.
    while (8 + text.len()) % 8 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// The tensors of one part's layers in torch's layouts, and their kinds into `meta`.
fn write_part(part: &str, layers: &[Layer], meta: &mut BTreeMap<String, String>,
              tensors: &mut Vec<(String, Vec<usize>, Vec<f32>)>) {
    let mut kinds = Vec::new();
    for (k, layer) in layers.iter().enumerate() {
        let name = format!("{part}.{k}");
        kinds.push(match layer {
            Layer::Linear { weight, bias, inputs, outputs } => {
                let mut w = vec![0.0f32; weight.len()];
                for i in 0..*inputs {
                    for o in 0..*outputs {
                        w[o * inputs + i] = weight[i * outputs + o];
                    }
                }
                tensors.push((format!("{name}.weight"), vec![*outputs, *inputs], w));
                tensors.push((format!("{name}.bias"), vec![*outputs], bias.clone()));
                "linear"
            }
            Layer::Act(Activation::Relu) => "relu",
            Layer::Act(Activation::Tanh) => "tanh",
            Layer::Act(Activation::GeluTanh) => "gelu_tanh",
            Layer::LayerNorm { gamma, beta, eps } => {
                tensors.push((format!("{name}.gamma"), vec![gamma.len()], gamma.clone()));
                tensors.push((format!("{name}.beta"), vec![beta.len()], beta.clone()));
                meta.insert(format!("{name}.eps"), format!("{eps:?}"));
                "layernorm"
            }
            Layer::Residual(body) => {
                write_part(&name, body, meta, tensors);
                "residual"
            }
            Layer::Conv2d(c) => {
                let patch = c.in_channels * c.kernel.0 * c.kernel.1;
                let mut w = vec![0.0f32; c.weight.len()];
                for p in 0..patch {
                    for o in 0..c.out_channels {
                        w[o * patch + p] = c.weight[p * c.out_channels + o];
                    }
                }
                tensors.push((format!("{name}.weight"), vec![c.out_channels, c.in_channels, c.kernel.0, c.kernel.1], w));
                tensors.push((format!("{name}.bias"), vec![c.out_channels], c.bias.clone()));
                for (key, (a, b)) in [("stride", c.stride), ("padding", c.padding), ("input", c.input)] {
                    meta.insert(format!("{name}.{key}"), format!("{a},{b}"));
                }
                "conv2d"
            }
        });
    }
    meta.insert(part.to_string(), kinds.join(","));
}

fn floats(t: &Tensor<'_>) -> Vec<f32> {
    t.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// The layers of part `part`, whose kinds the metadata entry `part` lists.
fn read_part(part: &str, meta: &BTreeMap<String, String>, tensors: &BTreeMap<String, Tensor<'_>>)
             -> Result<Vec<Layer>, String> {
    let kinds = meta.get(part).ok_or_else(|| format!("the policy file does not describe its {part}"))?;
    kinds.split(',').filter(|s| !s.is_empty()).enumerate().map(|(k, kind)| read_layer(part, k, kind, meta, tensors))
        .collect()
}

/// A metadata pair "a,b" of layer `name`.
fn pair(meta: &BTreeMap<String, String>, name: &str) -> Result<(usize, usize), String> {
    let bad = || format!("the policy file's {name} must be two counts like \"1,1\"");
    let text = meta.get(name).ok_or_else(bad)?;
    match text.split(',').map(|v| v.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>() {
        Ok(v) if v.len() == 2 => Ok((v[0], v[1])),
        _ => Err(bad()),
    }
}

fn read_layer(part: &str, k: usize, kind: &str, meta: &BTreeMap<String, String>,
              tensors: &BTreeMap<String, Tensor<'_>>) -> Result<Layer, String> {
    let tensor = |name: &str| -> Result<Vec<f32>, String> {
        let key = format!("{part}.{k}.{name}");
        tensors.get(&key).map(floats).ok_or_else(|| format!("the policy file has no tensor {key}"))
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
        "residual" => Ok(Layer::Residual(read_part(&format!("{part}.{k}"), meta, tensors)?)),
        "conv2d" => {
            let key = format!("{part}.{k}.weight");
            let shape = tensors.get(&key).map(|t| t.shape.clone()).unwrap_or_default();
            if shape.len() != 4 {
                return Err(format!("{key} must be a 4-D tensor [out, in, kernel_h, kernel_w]"));
            }
            let name = |what: &str| format!("{part}.{k}.{what}");
            let (stride, padding, input) = (pair(meta, &name("stride"))?, pair(meta, &name("padding"))?,
                                            pair(meta, &name("input"))?);
            Conv2d::from_torch(&tensor("weight")?, &tensor("bias")?, shape[1], shape[0], (shape[2], shape[3]), stride,
                               padding, input)
                .map(Layer::Conv2d)
                .map_err(|e| format!("{part} layer {k}: {e}"))
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

    fn conv_residual_gaussian() -> Vec<u8> {
        file(
            &[
                ("trunk.0.weight", vec![1, 1, 1, 1], vec![2.0]),
                ("trunk.0.bias", vec![1], vec![0.5]),
                ("policy_head.0.0.weight", vec![4, 4], (0..16).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 }).collect()),
                ("policy_head.0.0.bias", vec![4], vec![0.0; 4]),
                ("policy_head.1.weight", vec![2, 4], vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
                ("policy_head.1.bias", vec![2], vec![0.0, -1.0]),
                ("value_head.0.weight", vec![1, 4], vec![1.0; 4]),
                ("value_head.0.bias", vec![1], vec![0.0]),
                ("log_std", vec![2], vec![0.0, 0.0]),
            ],
            &[("format", FORMAT), ("inputs", "4"), ("trunk", "conv2d,relu"), ("trunk.0.stride", "1,1"),
              ("trunk.0.padding", "0,0"), ("trunk.0.input", "2,2"), ("policy_head", "residual,linear"),
              ("policy_head.0", "linear"), ("value_head", "linear")],
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
    fn reads_convolutions_residual_blocks_and_gaussian_policies() {
        let bytes = conv_residual_gaussian();
        let mut agent = Agent::from_safetensors(&bytes).unwrap();
        // conv: 2x + 0.5 = [2.5, 4.5, 0.5, 6.5]; residual doubles it; the head picks rows 0 and 3.
        let (logits, value) = agent.evaluate(&[1.0, 2.0, 0.0, 3.0]).unwrap();
        assert_eq!(logits, &[5.0, 12.0]);
        assert_eq!(value, 14.0);
        assert_eq!(agent.act_values(&[1.0, 2.0, 0.0, 3.0], true).unwrap(), vec![5.0, 12.0]);
        assert!(Agent::from_safetensors(&tiny()).unwrap().act_values(&[0.0; 3], true).is_err());
    }

    #[test]
    fn a_written_policy_file_reads_back_as_the_same_policy() {
        for bytes in [tiny(), conv_residual_gaussian()] {
            let mut agent = Agent::from_safetensors(&bytes).unwrap();
            let again = agent.to_safetensors();
            let header = u64::from_le_bytes(again[..8].try_into().unwrap());
            assert_eq!((8 + header) % 8, 0, "the data starts 8-byte aligned");
            let mut back = Agent::from_safetensors(&again).unwrap();
            assert!(agent.meta.iter().all(|(k, v)| back.meta.get(k) == Some(v)), "the metadata is kept");
            assert_eq!(back.meta["inputs"], agent.policy.inputs.to_string());
            assert_eq!(back.log_std, agent.log_std);
            let obs: Vec<f32> = (0..agent.policy.inputs).map(|i| i as f32 - 1.5).collect();
            let (l1, v1) = agent.evaluate(&obs).map(|(l, v)| (l.to_vec(), v)).unwrap();
            let (l2, v2) = back.evaluate(&obs).map(|(l, v)| (l.to_vec(), v)).unwrap();
            assert_eq!((l1, v1), (l2, v2));
            assert_eq!(back.to_safetensors(), again);
        }
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

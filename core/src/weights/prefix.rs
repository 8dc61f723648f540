//! Wrapper prefixes of reference checkpoints (reference §2.4): the model classes hold the UNet
//! twice (`unet.*` and `diffusion.net.*`), training wrappers add an outer `model.`.

use crate::{Error, Result};
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The tensors under `prefix` (e.g. `"model."`), with it stripped; other keys are dropped.
pub fn strip_prefix(tensors: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    tensors
        .iter()
        .filter_map(|(k, t)| {
            k.strip_prefix(prefix)
                .map(|rest| (rest.to_string(), t.clone()))
        })
        .collect()
}

fn same_values(a: &Tensor, b: &Tensor) -> Result<bool> {
    if a.dims() != b.dims() {
        return Ok(false);
    }
    let diff = (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
        .abs()?
        .max_all()?;
    Ok(a.elem_count() == 0 || diff.to_scalar::<f64>()? == 0.0)
}

/// Folds the `alias` copies (e.g. `diffusion.net.`) into `canonical` ones (e.g. `unet.`): where
/// both exist they must hold equal values (else [`Error::WeightAudit`] lists the keys that differ);
/// where only the alias exists it is renamed. Other keys pass through.
pub fn merge_duplicate_copies(
    tensors: HashMap<String, Tensor>,
    canonical: &str,
    alias: &str,
    source: &Path,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::with_capacity(tensors.len());
    let mut aliased = Vec::new();
    for (k, t) in tensors {
        match k.strip_prefix(alias) {
            Some(rest) => aliased.push((format!("{canonical}{rest}"), t)),
            None => {
                out.insert(k, t);
            }
        }
    }
    let mut problems = Vec::new();
    for (key, t) in aliased {
        match out.get(&key) {
            Some(existing) => {
                if !same_values(existing, &t)? {
                    let alias_key = format!("{alias}{}", &key[canonical.len()..]);
                    problems.push(format!("`{key}` and `{alias_key}` hold different values"));
                }
            }
            None => {
                out.insert(key, t);
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort();
        Err(Error::WeightAudit {
            path: source.to_path_buf(),
            problems,
        })
    }
}

/// The UNet's own tensors out of a checkpoint. With an explicit `prefix` (`""` = the root), the
/// keys under it; otherwise: an outer `model.` is stripped when no key sits at `unet.` or
/// `diffusion.net.`, then the `unet.` / `diffusion.net.` copies are merged (checked for
/// agreement) and taken; a checkpoint with neither is a bare UNet state dict.
pub fn select_unet(
    tensors: HashMap<String, Tensor>,
    prefix: Option<&str>,
    source: &Path,
) -> Result<HashMap<String, Tensor>> {
    if let Some(p) = prefix {
        let out = strip_prefix(&tensors, p);
        if out.is_empty() {
            return Err(Error::WeightsFile {
                path: source.to_path_buf(),
                reason: format!("no tensor under the prefix `{p}`"),
            });
        }
        return Ok(out);
    }
    let has = |t: &HashMap<String, Tensor>, p: &str| t.keys().any(|k| k.starts_with(p));
    let mut tensors = tensors;
    if !has(&tensors, "unet.") && !has(&tensors, "diffusion.net.") && has(&tensors, "model.") {
        tensors = strip_prefix(&tensors, "model.");
    }
    if has(&tensors, "unet.") || has(&tensors, "diffusion.net.") {
        let merged = merge_duplicate_copies(tensors, "unet.", "diffusion.net.", source)?;
        return Ok(strip_prefix(&merged, "unet."));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: f32) -> Tensor {
        Tensor::new(&[v], &Device::Cpu).unwrap()
    }

    #[test]
    fn duplicate_copies_are_merged_and_checked() {
        let src = Path::new("<test>");
        let mut m = HashMap::new();
        m.insert("model.unet.a".to_string(), t(1.0));
        m.insert("model.diffusion.net.a".to_string(), t(1.0));
        m.insert("model.diffusion.net.b".to_string(), t(2.0));
        let out = select_unet(m.clone(), None, src).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.contains_key("a") && out.contains_key("b"));
        m.insert("model.diffusion.net.a".to_string(), t(3.0));
        assert!(matches!(
            select_unet(m.clone(), None, src),
            Err(Error::WeightAudit { .. })
        ));
        let explicit = select_unet(m, Some("model.diffusion.net."), src).unwrap();
        assert_eq!(explicit.len(), 2);
    }
}

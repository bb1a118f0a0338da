//! Operations over lists of named parameters: the EMA of a teacher and the copy that starts it.

use candle_core::{Result, Var};

/// `target = m * target + (1 - m) * online`, parameter by parameter (same order and shapes).
pub fn ema_update(target: &[(String, Var)], online: &[(String, Var)], momentum: f64) -> Result<()> {
    for ((name, mine), (other, theirs)) in target.iter().zip(online) {
        if name != other {
            candle_core::bail!("EMA pairs `{name}` with `{other}`");
        }
        mine.set(
            &((mine.as_tensor() * momentum)? + (theirs.as_tensor().detach() * (1.0 - momentum))?)?,
        )?;
    }
    Ok(())
}

/// Sets every parameter of `target` to the value of the same-named one of `source`.
pub fn copy_params(target: &[(String, Var)], source: &[(String, Var)]) -> Result<()> {
    ema_update(target, source, 0.0)
}

//! Optimisers with state that can be saved and restored (candle's AdamW keeps its moments
//! private), matching PyTorch's update rules: SGD with momentum and L2 weight decay, and AdamW
//! with decoupled weight decay; plus constant and warm-up + cosine learning-rate schedules.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Optimiser choice and hyperparameters (docs/method.md §8, 13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// AdamW (docs/method.md §13 default: lr 3e-4, weight decay 0).
    Adamw {
        /// Learning rate.
        #[serde(default = "default_lr")]
        lr: f64,
        /// First-moment decay.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Added to the root of the second moment.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Decoupled weight decay.
        #[serde(default)]
        weight_decay: f64,
    },
    /// SGD with momentum and L2 weight decay (the official toolkit: lr 3e-4, 0.9, 1e-4).
    Sgd {
        /// Learning rate.
        #[serde(default = "default_lr")]
        lr: f64,
        /// Momentum.
        #[serde(default = "default_momentum")]
        momentum: f64,
        /// L2 weight decay added to the gradient.
        #[serde(default = "default_sgd_wd")]
        weight_decay: f64,
    },
}

fn default_lr() -> f64 {
    3e-4
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_momentum() -> f64 {
    0.9
}
fn default_sgd_wd() -> f64 {
    1e-4
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adamw {
            lr: default_lr(),
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// Adam (AdamW without weight decay) with PyTorch's defaults at learning rate `lr`: the
    /// probes' and fine-tuning's optimiser (docs/method.md §9.3).
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adamw {
            lr,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    /// Bad values, with keys relative to `optimizer`: the ranges PyTorch's optimisers accept
    /// (a learning rate, decay and `eps` of at least 0, Adam's betas in [0, 1)).
    pub fn problems(&self) -> Vec<crate::problems::Problem> {
        let at_least_zero = |key: &str, v: f64| {
            (!(v.is_finite() && v >= 0.0)).then(|| {
                crate::problems::Problem::new(
                    key,
                    format!("{v} must be finite and at least 0"),
                    "docs/method.md §13: lr 3e-4",
                )
            })
        };
        let beta = |key: &str, v: f64| {
            (!(0.0..1.0).contains(&v)).then(|| {
                crate::problems::Problem::new(
                    key,
                    format!("{v} is not in [0, 1)"),
                    "Adam's defaults are 0.9 and 0.999",
                )
            })
        };
        match *self {
            OptimizerConfig::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => [
                at_least_zero("lr", lr),
                beta("beta1", beta1),
                beta("beta2", beta2),
                at_least_zero("eps", eps),
                at_least_zero("weight_decay", weight_decay),
            ]
            .into_iter()
            .flatten()
            .collect(),
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => [
                at_least_zero("lr", lr),
                at_least_zero("momentum", momentum),
                at_least_zero("weight_decay", weight_decay),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adamw { lr, .. } | OptimizerConfig::Sgd { lr, .. } => *lr,
        }
    }
}

/// Learning-rate schedule over optimiser steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The base rate throughout (official).
    Constant,
    /// Linear warm-up from 0 over `warmup_steps`, then cosine decay to `min_ratio * base`
    /// at the last step.
    WarmupCosine {
        /// Warm-up length in steps.
        warmup_steps: u64,
        /// Final rate as a fraction of the base rate.
        #[serde(default)]
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// The rate at 0-based `step` of `total_steps`.
    pub fn lr(&self, base: f64, step: u64, total_steps: u64) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::WarmupCosine {
                warmup_steps,
                min_ratio,
            } => {
                if step < warmup_steps {
                    return base * (step + 1) as f64 / warmup_steps as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1) as f64;
                let progress = ((step - warmup_steps) as f64 / span).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                base * (min_ratio + (1.0 - min_ratio) * cosine)
            }
        }
    }
}

/// An optimiser over a fixed, ordered list of parameters, with exportable state.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    /// Steps taken.
    pub steps: u64,
    /// Per parameter: SGD momentum buffer, or AdamW (m, v); `None` until its first step.
    slots: Vec<Option<(Tensor, Option<Tensor>)>>,
}

impl Optimizer {
    /// A fresh optimiser for `n_params` parameters.
    pub fn new(config: OptimizerConfig, n_params: usize) -> Self {
        Self {
            config,
            steps: 0,
            slots: vec![None; n_params],
        }
    }

    /// One update of `params` with their gradients in `grads` at learning rate `lr`.
    /// Parameters without a gradient are left alone, as in PyTorch.
    pub fn step(&mut self, params: &[Var], grads: &GradStore, lr: f64) -> Result<()> {
        self.update(params, lr, |_, param| grads.get(param.as_tensor()).cloned())
    }

    /// One update of `params` with gradients computed outside autograd (`grads[i]` for
    /// `params[i]`), as the linear probe computes its own.
    pub fn step_with_gradients(&mut self, params: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        if grads.len() != params.len() {
            candle_core::bail!(
                "{} gradients given for {} parameters",
                grads.len(),
                params.len()
            );
        }
        self.update(params, lr, |i, _| Some(grads[i].clone()))
    }

    /// The update rule, with `gradient(i, param)` supplying each parameter's gradient.
    fn update(
        &mut self,
        params: &[Var],
        lr: f64,
        gradient: impl Fn(usize, &Var) -> Option<Tensor>,
    ) -> Result<()> {
        if params.len() != self.slots.len() {
            candle_core::bail!(
                "optimiser built for {} parameters, given {}",
                self.slots.len(),
                params.len()
            );
        }
        self.steps += 1;
        let t = self.steps as i32;
        for (i, (param, slot)) in params.iter().zip(self.slots.iter_mut()).enumerate() {
            // Detached: a gradient carries the autograd graph of its step (every activation);
            // kept in a moment buffer it would hold every step's graph alive.
            let Some(grad) = gradient(i, param).map(|g| g.detach()) else {
                continue;
            };
            // The update is plain arithmetic on values: no graph may link one step to the next.
            let p = &param.as_tensor().detach();
            match self.config {
                OptimizerConfig::Sgd {
                    momentum,
                    weight_decay,
                    ..
                } => {
                    let g = (&grad + (p * weight_decay)?)?;
                    let buf = match slot.take() {
                        None => g,
                        Some((buf, _)) => ((buf * momentum)? + g)?,
                    };
                    param.set(&(p - (&buf * lr)?)?)?;
                    *slot = Some((buf.detach(), None));
                }
                OptimizerConfig::Adamw {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    ..
                } => {
                    let decayed = (p * (1.0 - lr * weight_decay))?;
                    let (m, v) = match slot.take() {
                        None => (grad.zeros_like()?, grad.zeros_like()?),
                        Some((m, v)) => (m, v.expect("adamw slots hold both moments")),
                    };
                    let m = ((m * beta1)? + (&grad * (1.0 - beta1))?)?;
                    let v = ((v * beta2)? + (grad.sqr()? * (1.0 - beta2))?)?;
                    let bias1 = 1.0 - beta1.powi(t);
                    let bias2 = 1.0 - beta2.powi(t);
                    let denom = ((v.sqrt()? / bias2.sqrt())? + eps)?;
                    param.set(&(decayed - (m.div(&denom)? * (lr / bias1))?)?)?;
                    *slot = Some((m.detach(), Some(v.detach())));
                }
            }
        }
        Ok(())
    }

    /// The state as named tensors (`slot.<i>.<m|v|buf>`) plus the step count.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some((first, second)) = slot {
                let first_name = if second.is_some() { "m" } else { "buf" };
                out.push((format!("slot.{i}.{first_name}"), first.clone()));
                if let Some(v) = second {
                    out.push((format!("slot.{i}.v"), v.clone()));
                }
            }
        }
        out
    }

    /// Restores state written by [`Optimizer::state`] after `steps` steps.
    pub fn load_state(
        &mut self,
        steps: u64,
        state: &std::collections::HashMap<String, Tensor>,
    ) -> Result<()> {
        self.steps = steps;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            *slot = match (
                state.get(&format!("slot.{i}.buf")),
                state.get(&format!("slot.{i}.m")),
                state.get(&format!("slot.{i}.v")),
            ) {
                (Some(buf), None, None) => Some((buf.clone(), None)),
                (None, Some(m), Some(v)) => Some((m.clone(), Some(v.clone()))),
                (None, None, None) => None,
                _ => candle_core::bail!("optimiser state for parameter {i} is incomplete"),
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The gradients of `sum(p^2)`.
    fn square_sum_grads(p: &Var) -> GradStore {
        p.as_tensor()
            .sqr()
            .and_then(|t| t.sum_all())
            .and_then(|t| t.backward())
            .unwrap()
    }

    /// Optimiser state that kept a step's autograd graph alive grew memory without bound
    /// (15 GB after 10 steps of the demo); the slots must hold plain values.
    #[test]
    fn state_holds_no_autograd_graph() {
        for config in [
            OptimizerConfig::default(),
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
        ] {
            let p =
                Var::from_tensor(&Tensor::new(&[1f32, -2.0, 3.0], &Device::Cpu).unwrap()).unwrap();
            let mut opt = Optimizer::new(config, 1);
            for _ in 0..2 {
                let grads = square_sum_grads(&p);
                opt.step(std::slice::from_ref(&p), &grads, 0.1).unwrap();
            }
            assert!(opt.state().iter().all(|(_, t)| !t.track_op()));
        }
    }

    /// Gradients handed in (the linear probe's) update exactly as autograd's do.
    #[test]
    fn handed_in_gradients_update_as_autograd_ones() {
        let start = [0.5f32, -1.5, 2.0];
        let var = || Var::from_tensor(&Tensor::new(&start, &Device::Cpu).unwrap()).unwrap();
        let (a, b) = (var(), var());
        let (mut by_store, mut by_hand) = (
            Optimizer::new(OptimizerConfig::adam(0.1), 1),
            Optimizer::new(OptimizerConfig::adam(0.1), 1),
        );
        for _ in 0..3 {
            let grads = square_sum_grads(&a);
            by_store
                .step(std::slice::from_ref(&a), &grads, 0.1)
                .unwrap();
            let grad = (b.as_tensor() * 2.0).unwrap();
            by_hand
                .step_with_gradients(std::slice::from_ref(&b), &[grad], 0.1)
                .unwrap();
        }
        let values = |v: &Var| v.as_tensor().to_vec1::<f32>().unwrap();
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), start);
        assert!(by_hand
            .step_with_gradients(std::slice::from_ref(&b), &[], 0.1)
            .is_err());
    }

    #[test]
    fn warmup_cosine_schedule() {
        let s = LrSchedule::WarmupCosine {
            warmup_steps: 2,
            min_ratio: 0.1,
        };
        assert_eq!(s.lr(1.0, 0, 10), 0.5);
        assert_eq!(s.lr(1.0, 1, 10), 1.0);
        assert!((s.lr(1.0, 2, 10) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10, 10) - 0.1).abs() < 1e-12);
    }
}

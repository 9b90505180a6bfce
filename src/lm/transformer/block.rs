//! The pre-norm decoder block of Llama, Gemma and Qwen2:
//! `h = x + Attn(RMSNorm(x))`, `out = h + MLP(RMSNorm(h))`.
//!
//! A family whose block differs (Gemma 2's extra norms and soft-capping,
//! say) implements [`DecoderLayer`] in its own file and names its loader in
//! its [`super::Family`].

use anyhow::Result;
use tch::Tensor;

use super::layers::{Attention, AttentionMask, AttentionShape, Mlp, Pass, RmsNorm, RopeTables, Scope, WeightSource};
use crate::lm::config::ModelConfig;

/// One decoder layer of a loaded model.
pub(crate) trait DecoderLayer: Send {
    /// The layer's output for `x` `[B, T, d]` under the forward pass's shared
    /// `mask`; `past` positions are cached in `cache`, which receives this
    /// call's keys and values. `pass` says whether autograd records this
    /// forward and in which precision its products run ([`Pass`]).
    fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &AttentionMask,
        past: i64,
        cache: Option<&mut (Tensor, Tensor)>,
        pass: Pass,
    ) -> Result<Tensor>;

    /// Converts every parameter to `kind` in place (the `VarStore`'s
    /// variables see it).
    fn set_kind(&mut self, kind: tch::Kind) -> Result<()>;
}

/// Loads one decoder layer of a family from its scope
/// (`model.layers.<i>`).
pub(crate) type LoadLayer = fn(&Scope, &ModelConfig, &mut WeightSource) -> Result<Box<dyn DecoderLayer>>;

/// The pre-norm block (see the module docs).
pub(crate) struct PreNormBlock {
    input_norm: RmsNorm,
    attn: Attention,
    post_norm: RmsNorm,
    mlp: Mlp,
}

impl PreNormBlock {
    /// `self_attn`, `mlp`, `input_layernorm` and `post_attention_layernorm`
    /// of scope `s`, shaped and switched by `cfg`'s family.
    pub(crate) fn load(s: &Scope, cfg: &ModelConfig, src: &mut WeightSource) -> Result<Box<dyn DecoderLayer>> {
        let family = cfg.arch.family();
        let shape = AttentionShape {
            hidden: cfg.hidden_size,
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            qkv_bias: family.qkv_bias,
        };
        let attn = Attention::load(&s.pp("self_attn"), shape, src)?;
        let mlp = Mlp::load(&s.pp("mlp"), cfg.hidden_size, cfg.intermediate_size, family.activation, src)?;
        let norm = |name: &str, src: &mut WeightSource| {
            RmsNorm::load(&s.pp(name), cfg.hidden_size, cfg.rms_norm_eps, family.norm_plus_one, src)
        };
        let input_norm = norm("input_layernorm", src)?;
        let post_norm = norm("post_attention_layernorm", src)?;
        Ok(Box::new(PreNormBlock { input_norm, attn, post_norm, mlp }))
    }
}

impl DecoderLayer for PreNormBlock {
    fn forward(
        &self,
        x: &Tensor,
        rope: &RopeTables,
        mask: &AttentionMask,
        past: i64,
        cache: Option<&mut (Tensor, Tensor)>,
        pass: Pass,
    ) -> Result<Tensor> {
        let hn = self.input_norm.forward(x)?;
        let a = self.attn.forward(&hn, rope, mask, past, cache, pass)?;
        let x = x.f_add(&a)?;
        let hn = self.post_norm.forward(&x)?;
        Ok(x.f_add(&self.mlp.forward(&hn, pass)?)?)
    }

    fn set_kind(&mut self, kind: tch::Kind) -> Result<()> {
        self.input_norm.set_kind(kind)?;
        self.attn.set_kind(kind)?;
        self.post_norm.set_kind(kind)?;
        self.mlp.set_kind(kind)
    }
}

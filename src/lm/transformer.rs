//! The decoder-only transformer (Llama: Touvron et al. 2023, "LLaMA: Open
//! and Efficient Foundation Language Models"; reference implementation
//! Hugging Face `transformers/models/llama/modeling_llama.py`), with the
//! Gemma and Qwen2 differences as configuration switches (see [`Arch`]).
//!
//! Per block: `h = x + Attn(RMSNorm(x))`, `out = h + MLP(RMSNorm(h))`.
//! Attention uses rotary position embeddings (Su et al. 2021) in the
//! rotate-half layout of HF checkpoints, grouped-query attention (Ainslie et
//! al. 2023) and `scaled_dot_product_attention` with an explicit boolean mask
//! that combines causality with each row's padding, so prompts padded on the
//! left or right can share a batch. The MLP is SwiGLU (Shazeer 2020), or
//! GeGLU for Gemma.
//!
//! Parameters live in a `tch::nn::VarStore` under their Hugging Face names
//! (`model.layers.0.self_attn.q_proj.weight`, …); the blocks hold shallow
//! clones of those variables, so optimizer updates are seen by the model.
//! The model is immutable during inference; the KV cache is a separate value
//! passed `&mut`.

use anyhow::{bail, Context, Result};
use tch::{nn, Device, Kind, Tensor};

use super::config::ModelConfig;

/// Supplies a parameter by its HF name as a CPU f32 tensor; the
/// transformer checks the shape.
pub(crate) type WeightSource<'a> = dyn FnMut(&str) -> Result<Tensor> + 'a;

fn var(path: &nn::Path, hf_name: &str, shape: &[i64], src: &mut WeightSource) -> Result<Tensor> {
    let t = src(hf_name)?;
    if t.size() != shape {
        bail!("tensor {hf_name}: shape {:?}, expected {shape:?}", t.size());
    }
    let t = t.f_to_kind(Kind::Float)?;
    let leaf = hf_name.rsplit('.').next().unwrap_or(hf_name);
    let v = path.f_var_copy(leaf, &t).with_context(|| format!("creating variable {hf_name}"))?;
    Ok(v)
}

struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    fn load(
        p: &nn::Path,
        prefix: &str,
        name: &str,
        out_dim: usize,
        in_dim: usize,
        bias: bool,
        src: &mut WeightSource,
    ) -> Result<Self> {
        let base = format!("{prefix}.{name}");
        let p = p.sub(name);
        let w = var(&p, &format!("{base}.weight"), &[out_dim as i64, in_dim as i64], src)?;
        let b = if bias { Some(var(&p, &format!("{base}.bias"), &[out_dim as i64], src)?) } else { None };
        Ok(Linear { w, b })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.w, self.b.as_ref())?)
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    gelu: bool,
}

struct Block {
    input_norm: Tensor,
    attn: Attention,
    post_norm: Tensor,
    mlp: Mlp,
}

/// Per-layer keys and values of the tokens seen so far, preallocated to a
/// capacity: `[B, kv_heads, capacity, head_dim]` each.
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: i64,
    capacity: i64,
}

impl KvCache {
    /// Number of positions already filled.
    pub fn len(&self) -> i64 {
        self.len
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The decoder. See the module docs.
pub struct Transformer {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Tensor,
    device: Device,
}

impl Transformer {
    /// Creates every parameter in `vs` under its HF name, filled from `src`.
    ///
    /// # Errors
    /// A missing tensor or a shape mismatch, naming the tensor.
    pub(crate) fn load(vs: &nn::VarStore, cfg: &ModelConfig, src: &mut WeightSource) -> Result<Self> {
        let (d, v, ff) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
        let (h, kvh, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let root = vs.root();
        let model = root.sub("model");
        let embed = var(&model.sub("embed_tokens"), "model.embed_tokens.weight", &[v as i64, d as i64], src)?;
        let bias = cfg.arch.qkv_bias();
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let p = model.sub("layers").sub(i);
            let pre = format!("model.layers.{i}");
            let sa = p.sub("self_attn");
            let attn = Attention {
                q: Linear::load(&sa, &format!("{pre}.self_attn"), "q_proj", h * hd, d, bias, src)?,
                k: Linear::load(&sa, &format!("{pre}.self_attn"), "k_proj", kvh * hd, d, bias, src)?,
                v: Linear::load(&sa, &format!("{pre}.self_attn"), "v_proj", kvh * hd, d, bias, src)?,
                o: Linear::load(&sa, &format!("{pre}.self_attn"), "o_proj", d, h * hd, false, src)?,
                heads: h as i64,
                kv_heads: kvh as i64,
                head_dim: hd as i64,
            };
            let mp = p.sub("mlp");
            let mlp = Mlp {
                gate: Linear::load(&mp, &format!("{pre}.mlp"), "gate_proj", ff, d, false, src)?,
                up: Linear::load(&mp, &format!("{pre}.mlp"), "up_proj", ff, d, false, src)?,
                down: Linear::load(&mp, &format!("{pre}.mlp"), "down_proj", d, ff, false, src)?,
                gelu: cfg.arch.gelu_gate(),
            };
            let input_norm =
                var(&p.sub("input_layernorm"), &format!("{pre}.input_layernorm.weight"), &[d as i64], src)?;
            let post_norm = var(
                &p.sub("post_attention_layernorm"),
                &format!("{pre}.post_attention_layernorm.weight"),
                &[d as i64],
                src,
            )?;
            blocks.push(Block { input_norm, attn, post_norm, mlp });
        }
        let norm = var(&model.sub("norm"), "model.norm.weight", &[d as i64], src)?;
        let lm_head = if cfg.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            var(&root.sub("lm_head"), "lm_head.weight", &[v as i64, d as i64], src)?
        };
        let half = hd / 2;
        let inv: Vec<f32> = (0..half).map(|i| (1.0 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64)) as f32).collect();
        let inv_freq = Tensor::f_from_slice(&inv)?.f_to_device(vs.device())?;
        Ok(Transformer { cfg: cfg.clone(), embed, blocks, norm, lm_head, inv_freq, device: vs.device() })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.device
    }

    /// An empty cache for `batch` rows and up to `capacity` positions.
    ///
    /// # Errors
    /// Allocation failure.
    pub fn new_cache(&self, batch: i64, capacity: i64) -> Result<KvCache> {
        let shape = [batch, self.cfg.num_kv_heads as i64, capacity, self.cfg.head_dim as i64];
        let mut layers = Vec::with_capacity(self.blocks.len());
        for _ in &self.blocks {
            layers.push((
                Tensor::f_zeros(shape, (Kind::Float, self.device))?,
                Tensor::f_zeros(shape, (Kind::Float, self.device))?,
            ));
        }
        Ok(KvCache { layers, len: 0, capacity })
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let d = self.cfg.hidden_size as i64;
        if self.cfg.arch.norm_plus_one() {
            let w1 = w.f_add_scalar(1.0)?;
            Ok(x.f_rms_norm([d], Some(&w1), self.cfg.rms_norm_eps)?)
        } else {
            Ok(x.f_rms_norm([d], Some(w), self.cfg.rms_norm_eps)?)
        }
    }

    /// Final hidden states `[B, T, d]` (after the last RMSNorm).
    ///
    /// * `input_ids`: `[B, T]` i64.
    /// * `positions`: `[B, T]` i64, the RoPE position of each token.
    /// * `key_mask`: `[B, past + T]` bool/i64, 1 where a key is a real token.
    /// * `cache`: when given, its `len()` positions precede `input_ids`; the
    ///   new keys/values are written after them and the length advances.
    ///
    /// Each query attends to real keys at or before its own position, and
    /// always to itself (so padding rows stay finite; their outputs are
    /// meaningless and ignored).
    ///
    /// # Errors
    /// Shape mismatches or a full cache.
    pub fn hidden(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        key_mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.size2()?;
        let past = cache.as_ref().map_or(0, |c| c.len);
        let tk = past + t;
        if let Some(c) = &cache {
            if tk > c.capacity {
                bail!("KV cache full: {past} + {t} positions exceed capacity {}", c.capacity);
            }
        }
        let (kb, kt) = key_mask.size2()?;
        if kb != b || kt != tk {
            bail!("key mask is [{kb}, {kt}], expected [{b}, {tk}]");
        }
        let dev = self.device;
        // Boolean attention mask [B, 1, T, Tk].
        let kpos = Tensor::f_arange(tk, (Kind::Int64, dev))?.f_view([1, 1, 1, tk])?;
        let qpos = Tensor::f_arange(t, (Kind::Int64, dev))?.f_add_scalar(past)?.f_view([1, 1, t, 1])?;
        let keys_real = key_mask.f_to_kind(Kind::Bool)?.f_view([b, 1, 1, tk])?;
        let mask = kpos.f_le_tensor(&qpos)?.f_logical_and(&keys_real)?.f_logical_or(&kpos.f_eq_tensor(&qpos)?)?;
        // RoPE tables [B, 1, T, head_dim].
        let freqs = positions.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?.f_mul(&self.inv_freq)?;
        let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?.f_unsqueeze(1)?;
        let (cos, sin) = (emb.f_cos()?, emb.f_sin()?);

        let mut x = Tensor::f_embedding(&self.embed, input_ids, -1, false, false)?;
        if self.cfg.arch.scale_embeddings() {
            x = x.f_mul_scalar((self.cfg.hidden_size as f64).sqrt())?;
        }
        for (li, blk) in self.blocks.iter().enumerate() {
            let hn = self.rms_norm(&x, &blk.input_norm)?;
            let layer_cache = match cache.as_deref_mut() {
                Some(c) => Some(&mut c.layers[li]),
                None => None,
            };
            let a = blk.attn.forward(&hn, &cos, &sin, &mask, past, layer_cache)?;
            x = x.f_add(&a)?;
            let hn = self.rms_norm(&x, &blk.post_norm)?;
            x = x.f_add(&blk.mlp.forward(&hn)?)?;
        }
        if let Some(c) = cache {
            c.len = tk;
        }
        self.rms_norm(&x, &self.norm)
    }

    /// LM-head logits `[.., V]` from hidden states `[.., d]`.
    ///
    /// # Errors
    /// Shape mismatch.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.f_linear(&self.lm_head, None::<&Tensor>)?)
    }
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let d = x.size().last().copied().unwrap_or(0);
    let x1 = x.f_narrow(-1, 0, d / 2)?;
    let x2 = x.f_narrow(-1, d / 2, d / 2)?;
    Ok(Tensor::f_cat(&[&x2.f_neg()?, &x1], -1)?)
}

fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    Ok(x.f_mul(cos)?.f_add(&rotate_half(x)?.f_mul(sin)?)?)
}

impl Attention {
    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        past: i64,
        cache: Option<&mut (Tensor, Tensor)>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.size3()?;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let q = self.q.forward(x)?.f_view([b, t, h, hd])?.f_transpose(1, 2)?;
        let k = self.k.forward(x)?.f_view([b, t, kvh, hd])?.f_transpose(1, 2)?;
        let v = self.v.forward(x)?.f_view([b, t, kvh, hd])?.f_transpose(1, 2)?;
        let q = rope(&q, cos, sin)?;
        let k = rope(&k, cos, sin)?;
        let (k, v) = match cache {
            Some((kc, vc)) => {
                kc.f_narrow(2, past, t)?.f_copy_(&k)?;
                vc.f_narrow(2, past, t)?.f_copy_(&v)?;
                (kc.f_narrow(2, 0, past + t)?, vc.f_narrow(2, 0, past + t)?)
            }
            None => (k, v),
        };
        let tk = past + t;
        let rep = h / kvh;
        // Grouped-query attention without copying K/V: query heads
        // `g*rep .. (g+1)*rep` share KV head `g` (HF `repeat_kv`), so the
        // queries of one group are stacked along the sequence axis
        // ([B, kvh, rep*T, D]) and the mask is repeated to match.
        let out = if rep > 1 {
            let qg = q.f_reshape([b, kvh, rep * t, hd])?;
            let (mb, mt) = (mask.size()[0], mask.size()[2]);
            let mg = mask.f_unsqueeze(2)?.f_expand([mb, 1, rep, mt, tk], false)?.f_reshape([mb, 1, rep * mt, tk])?;
            let o = Tensor::f_scaled_dot_product_attention(
                &qg,
                &k,
                &v,
                Some(&mg),
                0.0,
                false,
                1.0 / (hd as f64).sqrt(),
                false,
            )?;
            o.f_reshape([b, h, t, hd])?
        } else {
            Tensor::f_scaled_dot_product_attention(&q, &k, &v, Some(mask), 0.0, false, 1.0 / (hd as f64).sqrt(), false)?
        };
        let out = out.f_transpose(1, 2)?.f_reshape([b, t, h * hd])?;
        self.o.forward(&out)
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?;
        let g = if self.gelu { g.f_gelu("tanh")? } else { g.f_silu()? };
        self.down.forward(&g.f_mul(&self.up.forward(x)?)?)
    }
}

//! llama.cpp's q/k row permutation: undone on import, redone on export.

/// Undoes llama.cpp's `permute` of `attn_q`/`attn_k` rows for a Llama
/// checkpoint: `convert_hf_to_gguf.py` reorders each head's rows from HF's
/// rotate-half layout (first half, second half) to interleaved pairs, i.e.
/// reshape `[heads, 2, head_dim/2, cols]` → swap axes 1,2. This applies the
/// inverse (reshape `[heads, head_dim/2, 2, cols]` → swap 1,2), so HF row
/// `h*D + s*D/2 + i` is taken from GGUF row `h*D + 2i + s`.
///
/// # Errors
/// A message when `rows` is not `heads * head_dim`.
pub fn unpermute_qk(data: &[f32], rows: usize, cols: usize, heads: usize) -> Result<Vec<f32>, String> {
    reorder(data, rows, cols, heads, false)
}

/// llama.cpp's `permute` of `attn_q`/`attn_k` rows, as `convert_hf_to_gguf.py`
/// applies it when writing a Llama checkpoint: the inverse of
/// [`unpermute_qk`], so GGUF row `h*D + 2i + s` is taken from HF row
/// `h*D + s*D/2 + i`.
///
/// # Errors
/// A message when `rows` is not `heads * head_dim` with an even `head_dim`.
pub fn permute_qk(data: &[f32], rows: usize, cols: usize, heads: usize) -> Result<Vec<f32>, String> {
    reorder(data, rows, cols, heads, true)
}

/// Moves whole rows between HF row `h*D + s*D/2 + i` and GGUF row
/// `h*D + 2i + s`: into the GGUF order when `to_gguf`, else back.
fn reorder(data: &[f32], rows: usize, cols: usize, heads: usize, to_gguf: bool) -> Result<Vec<f32>, String> {
    if heads == 0
        || !rows.is_multiple_of(heads)
        || !(rows / heads).is_multiple_of(2)
        || rows.checked_mul(cols) != Some(data.len())
    {
        return Err(format!("cannot reorder the q/k rows of a [{rows}, {cols}] tensor into {heads} heads"));
    }
    let d = rows / heads;
    let half = d / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for s in 0..2 {
            for i in 0..half {
                let (hf, gguf) = (h * d + s * half + i, h * d + 2 * i + s);
                let (dst, src) = if to_gguf { (gguf, hf) } else { (hf, gguf) };
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&data[src * cols..(src + 1) * cols]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // Two heads of dim 4, one column: HF rows 0..8.
        let hf: Vec<f32> = (0..8).map(|x| x as f32).collect();
        // llama.cpp permute: reshape [2, 2, 2] swap axes 1,2.
        let mut gguf = vec![0f32; 8];
        for hh in 0..2 {
            for s in 0..2 {
                for i in 0..2 {
                    gguf[hh * 4 + 2 * i + s] = hf[hh * 4 + s * 2 + i];
                }
            }
        }
        assert_eq!(unpermute_qk(&gguf, 8, 1, 2).unwrap(), hf);
        assert_eq!(permute_qk(&hf, 8, 1, 2).unwrap(), gguf);
        // Two columns, three heads of dim 2: a round trip.
        let x: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect();
        assert_eq!(unpermute_qk(&permute_qk(&x, 6, 2, 3).unwrap(), 6, 2, 3).unwrap(), x);
        assert!(permute_qk(&x, 6, 2, 4).is_err());
    }
}

//! llama.cpp's q/k row permutation, undone on import.

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
    if heads == 0
        || !rows.is_multiple_of(heads)
        || !(rows / heads).is_multiple_of(2)
        || rows.checked_mul(cols) != Some(data.len())
    {
        return Err(format!("cannot un-permute a [{rows}, {cols}] tensor into {heads} heads"));
    }
    let d = rows / heads;
    let half = d / 2;
    let mut out = vec![0f32; data.len()];
    for h in 0..heads {
        for s in 0..2 {
            for i in 0..half {
                let dst = h * d + s * half + i;
                let src = h * d + 2 * i + s;
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
    }
}

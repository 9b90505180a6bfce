//! The dequantization kernels: ggml's block formats to f32.

use half::{bf16, f16};

use super::GgmlType;

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// The 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes
/// of a Q4_K/Q5_K super-block (ggml `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
    } else {
        let d = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d as f32, m as f32)
    }
}

/// Dequantizes `numel` values of type `ty` from `bytes` to f32.
///
/// # Errors
/// A message when the byte length does not match `numel`.
pub fn dequantize(ty: GgmlType, bytes: &[u8], numel: usize) -> Result<Vec<f32>, String> {
    let (bv, bb) = ty.block();
    if !numel.is_multiple_of(bv) || (numel / bv).checked_mul(bb) != Some(bytes.len()) {
        return Err(format!("{ty:?}: {} bytes do not hold {numel} values", bytes.len()));
    }
    let mut out = Vec::with_capacity(numel);
    match ty {
        GgmlType::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::Bf16 => out.extend(bytes.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
        GgmlType::Q4_0 => {
            for b in bytes.chunks_exact(bb) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|&q| ((q & 0x0F) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in bytes.chunks_exact(bb) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|&q| (q & 0x0F) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            for b in bytes.chunks_exact(bb) {
                let (d, m, rest) = if ty == GgmlType::Q5_0 {
                    (f16_at(b, 0), 0.0, &b[2..])
                } else {
                    (f16_at(b, 0), f16_at(b, 2), &b[4..])
                };
                let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                let qs = &rest[4..20];
                let off = if ty == GgmlType::Q5_0 { 16 } else { 0 };
                let mut hi = [0f32; 16];
                for j in 0..16 {
                    let h0 = ((qh >> j) << 4) & 0x10;
                    let h1 = (qh >> (j + 12)) & 0x10;
                    let x0 = ((qs[j] as u32 & 0x0F) | h0) as i32 - off;
                    let x1 = ((qs[j] as u32 >> 4) | h1) as i32 - off;
                    out.push(x0 as f32 * d + m);
                    hi[j] = x1 as f32 * d + m;
                }
                out.extend_from_slice(&hi);
            }
        }
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(bb) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Q4K => {
            for b in bytes.chunks_exact(bb) {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qs = &b[16..144];
                for (k, q) in qs.chunks_exact(32).enumerate() {
                    let (s1, m1) = scale_min_k4(2 * k, scales);
                    let (s2, m2) = scale_min_k4(2 * k + 1, scales);
                    out.extend(q.iter().map(|&v| d * s1 * (v & 0x0F) as f32 - dmin * m1));
                    out.extend(q.iter().map(|&v| d * s2 * (v >> 4) as f32 - dmin * m2));
                }
            }
        }
        GgmlType::Q5K => {
            for b in bytes.chunks_exact(bb) {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                let scales = &b[4..16];
                let qh = &b[16..48];
                let qs = &b[48..176];
                for (k, q) in qs.chunks_exact(32).enumerate() {
                    let (s1, m1) = scale_min_k4(2 * k, scales);
                    let (s2, m2) = scale_min_k4(2 * k + 1, scales);
                    let (u1, u2) = (1u8 << (2 * k), 2u8 << (2 * k));
                    for l in 0..32 {
                        let h = if qh[l] & u1 != 0 { 16.0 } else { 0.0 };
                        out.push(d * s1 * ((q[l] & 0x0F) as f32 + h) - dmin * m1);
                    }
                    for l in 0..32 {
                        let h = if qh[l] & u2 != 0 { 16.0 } else { 0.0 };
                        out.push(d * s2 * ((q[l] >> 4) as f32 + h) - dmin * m2);
                    }
                }
            }
        }
        GgmlType::Q6K => {
            for b in bytes.chunks_exact(bb) {
                let d = f16_at(b, 208);
                let mut y = [0f32; 256];
                for n in 0..2 {
                    let ql = &b[64 * n..64 * n + 64];
                    let qh = &b[128 + 32 * n..128 + 32 * n + 32];
                    let sc = &b[192 + 8 * n..192 + 8 * n + 8];
                    let y = &mut y[128 * n..128 * n + 128];
                    for l in 0..32 {
                        let is = l / 16;
                        let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
                        let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                        let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                        let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                        y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                        y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                        y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                        y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
                    }
                }
                out.extend_from_slice(&y);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q8_0_and_q4_0_blocks() {
        let mut b = h(0.5).to_vec();
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let v = dequantize(GgmlType::Q8_0, &b, 32).unwrap();
        assert_eq!(v[0], -8.0);
        assert_eq!(v[31], 7.5);
        let mut b = h(2.0).to_vec();
        b.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        let v = dequantize(GgmlType::Q4_0, &b, 32).unwrap();
        assert_eq!(v[0], -16.0); // (0 - 8) * 2
        assert_eq!(v[15], 14.0); // (15 - 8) * 2
        assert_eq!(v[16], 14.0); // high nibble of byte 0 = 15
        assert_eq!(v[31], -16.0);
    }

    #[test]
    fn q4_1_and_q5_blocks() {
        let mut b = h(1.0).to_vec();
        b.extend(h(-3.0));
        b.extend((0..16u8).map(|i| i | (1 << 4)));
        let v = dequantize(GgmlType::Q4_1, &b, 32).unwrap();
        assert_eq!(v[5], 2.0);
        assert_eq!(v[20], -2.0);
        // Q5_0: value j's fifth bit is bit j of qh (low half), bit j+16 (high half).
        let mut b = h(1.0).to_vec();
        b.extend(((1u32 << 3) | (1u32 << 20)).to_le_bytes());
        b.extend([0u8; 16]);
        let v = dequantize(GgmlType::Q5_0, &b, 32).unwrap();
        assert_eq!(v[3], 0.0); // 16 - 16
        assert_eq!(v[2], -16.0);
        assert_eq!(v[20], 0.0); // high half, j = 4
        assert_eq!(v[21], -16.0);
    }

    #[test]
    fn q4_k_scales_and_mins() {
        // d = 1, dmin = 1; sub-block 0 scale 2 min 1, sub-block 1 scale 3 min 0,
        // sub-block 4 (j >= 4 packing) scale 5 + (1 << 4) = 21, min 0.
        let mut b = h(1.0).to_vec();
        b.extend(h(1.0));
        let mut sc = [0u8; 12];
        sc[0] = 2;
        sc[4] = 1;
        sc[1] = 3;
        sc[8] = 5; // low 4 bits of scale 4
        sc[0] |= 1 << 6; // bit 4 of scale 4 comes from q[j-4] >> 6
        b.extend(sc);
        b.extend([0x21u8; 128]); // low nibble 1, high nibble 2
        let v = dequantize(GgmlType::Q4K, &b, 256).unwrap();
        assert_eq!(v[0], 2.0 * 1.0 - 1.0);
        assert_eq!(v[32], 3.0 * 2.0);
        assert_eq!(v[128], 21.0 * 1.0);
    }

    #[test]
    fn q6_k_block() {
        let mut b = vec![0u8; 210];
        // ql[0] = 0x05 (q1 low=5, q3 low=0), qh[0] = 0b01 -> q1 = 5 | 16 = 21 - 32 = -11
        b[0] = 0x05;
        b[128] = 0b01;
        b[192] = 3; // sc[0]
        b[192 + 4] = (-2i8) as u8; // sc[4] for q3 of l < 16
        b[208..210].copy_from_slice(&h(0.5));
        let v = dequantize(GgmlType::Q6K, &b, 256).unwrap();
        assert_eq!(v[0], 0.5 * 3.0 * -11.0);
        assert_eq!(v[64], 0.5 * -2.0 * -32.0);
        assert_eq!(v[1], 0.5 * 3.0 * -32.0); // ql = qh = 0 -> q = -32
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(dequantize(GgmlType::Q4_1, &[0u8; 19], 32).is_err());
    }
}

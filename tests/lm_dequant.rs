//! GGML block dequantization against reference values from gguf-py's numpy
//! dequantizers (`tests/fixtures/lm_dequant.py` wrote the fixture).

use restpg::lm::gguf::{dequantize, GgmlType};

#[test]
fn dequantization_matches_gguf_py_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lm_dequant.json");
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let types = [
        ("Q4_0", GgmlType::Q4_0),
        ("Q4_1", GgmlType::Q4_1),
        ("Q5_0", GgmlType::Q5_0),
        ("Q5_1", GgmlType::Q5_1),
        ("Q8_0", GgmlType::Q8_0),
        ("Q4_K", GgmlType::Q4K),
        ("Q5_K", GgmlType::Q5K),
        ("Q6_K", GgmlType::Q6K),
    ];
    for (name, ty) in types {
        let case = &fixture[name];
        let hex = case["hex"].as_str().unwrap();
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
        let want: Vec<f32> = case["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let got = dequantize(ty, &bytes, want.len()).unwrap();
        let mut spread = 0f32;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}[{i}]: got {g}, reference {w}");
            spread = spread.max(w.abs());
        }
        assert!(spread > 0.0, "{name}: all-zero reference");
    }
}

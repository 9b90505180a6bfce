//! Typed reads of a GGUF file's metadata, each error naming the key.

use super::{GgufError, GgufFile, GgufValue};

impl GgufFile {
    fn meta_err(&self, key: &str, what: &str) -> GgufError {
        GgufError::Meta { path: self.path.clone(), key: key.into(), what: what.into() }
    }

    /// A string metadata value.
    ///
    /// # Errors
    /// Missing key or not a string.
    pub fn meta_str(&self, key: &str) -> Result<String, GgufError> {
        match self.meta.get(key) {
            Some(GgufValue::Str(s)) => Ok(s.clone()),
            Some(_) => Err(self.meta_err(key, "not a string")),
            None => Err(self.meta_err(key, "missing")),
        }
    }

    /// An optional non-negative integer metadata value.
    ///
    /// # Errors
    /// Present but not a non-negative integer.
    pub fn meta_usize_opt(&self, key: &str) -> Result<Option<usize>, GgufError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(GgufValue::U64(v)) => Ok(Some(*v as usize)),
            Some(GgufValue::I64(v)) if *v >= 0 => Ok(Some(*v as usize)),
            Some(_) => Err(self.meta_err(key, "not a non-negative integer")),
        }
    }

    /// A required non-negative integer metadata value.
    ///
    /// # Errors
    /// Missing key or wrong type.
    pub fn meta_usize(&self, key: &str) -> Result<usize, GgufError> {
        self.meta_usize_opt(key)?.ok_or_else(|| self.meta_err(key, "missing"))
    }

    /// An optional float metadata value.
    ///
    /// # Errors
    /// Present but not a number.
    pub fn meta_f64_opt(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(GgufValue::F64(v)) => Ok(Some(*v)),
            Some(GgufValue::U64(v)) => Ok(Some(*v as f64)),
            Some(GgufValue::I64(v)) => Ok(Some(*v as f64)),
            Some(_) => Err(self.meta_err(key, "not a number")),
        }
    }

    /// Length of an array metadata value.
    ///
    /// # Errors
    /// Missing key or not an array.
    pub fn meta_array_len(&self, key: &str) -> Result<usize, GgufError> {
        match self.meta.get(key) {
            Some(GgufValue::Array(a)) => Ok(a.len()),
            Some(_) => Err(self.meta_err(key, "not an array")),
            None => Err(self.meta_err(key, "missing")),
        }
    }

    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    ///
    /// # Errors
    /// Missing key, not an array, or an element that is not a string.
    pub fn meta_strings(&self, key: &str) -> Result<Vec<String>, GgufError> {
        match self.meta.get(key) {
            Some(GgufValue::Array(a)) => a
                .iter()
                .map(|v| match v {
                    GgufValue::Str(s) => Ok(s.clone()),
                    _ => Err(self.meta_err(key, "array element is not a string")),
                })
                .collect(),
            Some(_) => Err(self.meta_err(key, "not an array")),
            None => Err(self.meta_err(key, "missing")),
        }
    }

    /// An optional array of integers (e.g. `tokenizer.ggml.token_type`).
    ///
    /// # Errors
    /// Present but not an array of integers.
    pub fn meta_ints_opt(&self, key: &str) -> Result<Option<Vec<i64>>, GgufError> {
        match self.meta.get(key) {
            None => Ok(None),
            Some(GgufValue::Array(a)) => a
                .iter()
                .map(|v| match v {
                    GgufValue::I64(x) => Ok(*x),
                    GgufValue::U64(x) => Ok(*x as i64),
                    _ => Err(self.meta_err(key, "array element is not an integer")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.meta_err(key, "not an array")),
        }
    }
}

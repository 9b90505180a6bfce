//! `restpg model …`: import a GGUF into a Hugging Face directory, export a
//! checkpoint as a GGUF llama.cpp serves, show a model's configuration.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::lm::LanguageModel;

/// Arguments of `restpg model`.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModelCommand,
}

/// `restpg model` subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Dequantize a GGUF to f32 and write a Hugging Face directory
    /// (model.safetensors, config.json, tokenizer.json, generation_config.json).
    Import {
        /// The `.gguf` file.
        gguf: PathBuf,
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a checkpoint (a run's `blobs/<hash>` directory, any Hugging Face
    /// directory or GGUF) as a GGUF that llama.cpp serves, with the
    /// tokenizer and chat template of the GGUF it was trained from.
    Export {
        /// The checkpoint.
        model: PathBuf,
        /// Output format (GGUF: llama.cpp; a run's blob directories already
        /// are Hugging Face directories for vLLM and SGLang).
        #[arg(long, value_enum, default_value = "gguf")]
        format: ExportFormat,
        /// Element type of the weight matrices.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: crate::lm::gguf::ExportDtype,
        /// The GGUF the checkpoint was trained from (its metadata and
        /// tokenizer are copied); default: the set-up's SmolLM2-135M-Instruct.
        #[arg(long)]
        base: Option<PathBuf>,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a model's resolved configuration and weights hash as JSON.
    Info {
        /// A `.gguf` file or a Hugging Face directory.
        model: PathBuf,
    },
}

/// Formats `restpg model export` writes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// llama.cpp's single-file format.
    Gguf,
}

/// Runs `restpg model …`.
///
/// # Errors
/// Load or write failures naming the file.
pub fn run(args: ModelArgs) -> anyhow::Result<()> {
    match args.command {
        ModelCommand::Import { gguf, out } => {
            let m = LanguageModel::load(&gguf, tch::Device::Cpu)
                .with_context(|| format!("importing {}", gguf.display()))?;
            m.save(&out)?;
            let hash = m.weights_hash()?;
            println!(
                "{}",
                serde_json::json!({ "out": out, "weights_blake3": blake3::Hash::from(hash).to_hex().as_str() })
            );
            Ok(())
        }
        ModelCommand::Export { model, format: ExportFormat::Gguf, dtype, base, out } => {
            let base = match base {
                Some(b) => b,
                None => crate::paths::require(crate::paths::smollm2_gguf())?,
            };
            let g = crate::lm::gguf::GgufFile::open(&base)?;
            let m = LanguageModel::load(&model, tch::Device::Cpu)
                .with_context(|| format!("loading the checkpoint {}", model.display()))?;
            let summary = crate::lm::gguf::write_gguf(&out, &g, &m, dtype)
                .with_context(|| format!("exporting {} to {}", model.display(), out.display()))?;
            let info = serde_json::json!({
                "out": out,
                "base": base,
                "dtype": dtype,
                "tensors": summary.tensors,
                "metadata": summary.metadata,
                "bytes": summary.bytes,
                "weights_blake3": blake3::Hash::from(m.weights_hash()?).to_hex().as_str(),
            });
            println!("{info}");
            Ok(())
        }
        ModelCommand::Info { model } => {
            let m = LanguageModel::load(&model, tch::Device::Cpu)?;
            let hash = m.weights_hash()?;
            let info = serde_json::json!({
                "source": model,
                "config": m.config(),
                "eos_ids": m.tokenizer().eos_ids(),
                "weights_blake3": blake3::Hash::from(hash).to_hex().as_str(),
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
    }
}

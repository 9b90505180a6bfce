//! `restpg model …`: import a GGUF into a Hugging Face directory, show a
//! model's configuration.

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
    /// Print a model's resolved configuration and weights hash as JSON.
    Info {
        /// A `.gguf` file or a Hugging Face directory.
        model: PathBuf,
    },
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

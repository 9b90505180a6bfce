//! Training: supervised fine-tuning and the reward-weighted M-step of
//! REST-PG (Salemi et al. 2025, Algorithm 1, line 11; ReST-EM, Singh et al.
//! 2024).
pub mod batch;
pub mod config;
pub mod loss;
pub mod optim;
pub mod schedule;

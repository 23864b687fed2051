//! Experiments are data: a TOML file (`ExperimentSpec`, what the file says) is parsed and
//! validated into an [`Experiment`] (what runs). Errors name the file, line and field.

mod model;

pub use model::*;

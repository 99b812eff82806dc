//! The deployment layer: secrets leaving the store for programs and files.
//!
//! Owns the environment of `sesto exec` and env files ([`env`](mod@env)), templates
//! ([`template`]), materialized files ([`materialize`]), masking values in
//! output ([`mask`]) and scanning files for secrets before they are
//! committed ([`scan`]).
//!
//! May use: [`crate::format`] and [`crate::store`] (reads only). Nothing
//! here writes the store.

pub mod env;
pub mod mask;
pub mod materialize;
pub mod scan;
pub mod template;

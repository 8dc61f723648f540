pub mod folder;
pub mod variational;

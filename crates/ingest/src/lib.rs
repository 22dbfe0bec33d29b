pub use sync_model;

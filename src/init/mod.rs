//! init (in progress)

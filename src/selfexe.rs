//! selfexe (in progress)

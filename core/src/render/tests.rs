//! Tests of the use-case layer.

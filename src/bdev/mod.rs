//! The `bdev` layer (see DESIGN: filled in by its issue).

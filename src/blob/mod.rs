//! The `blob` layer (see DESIGN: filled in by its issue).

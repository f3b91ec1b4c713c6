//! The `env` layer (see DESIGN: filled in by its issue).

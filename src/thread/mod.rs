//! The `thread` layer (see DESIGN: filled in by its issue).

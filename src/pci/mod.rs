//! The `pci` layer (see DESIGN: filled in by its issue).

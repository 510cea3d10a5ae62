"""Where desired state comes from: Git."""

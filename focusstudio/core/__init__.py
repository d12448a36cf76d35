"""The Qt-free core of FocusStudio (enforced by an import-linter contract)."""

"""Inference backends of the deep methods: faster implementations of a network's forward that
keep its arithmetic (the reference forward is the module's own, beside its architecture)."""

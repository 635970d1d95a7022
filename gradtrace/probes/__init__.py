"""In-graph probes: tensors in, tensors out. No numpy, time, print or I/O."""

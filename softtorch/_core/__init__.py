"""The single copy of each shared idea: mode kernels, simplex projections, standardization,
straight-through, dim handling and argument checks."""

"""Geometry shared by the potential and the MD engine: neighbour lists with periodic images, pair vectors
(:mod:`.neighbors`)."""

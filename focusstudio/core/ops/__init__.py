"""Building blocks shared by the methods: box filters, spatial frequency, guided filter,
morphology, small-region removal, consistency verification of decision maps, composition, and the
parameter declarations of the post-processing (``ops.params``), each written once."""

"""Building blocks shared by the methods: box filters, spatial frequency, guided filter,
morphology, small-region removal and composition."""

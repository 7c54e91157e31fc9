"""Where the expensive work runs: in this process (`runtime.engine: local`, the default) or on a Ray cluster
(`runtime.engine: ray`, the optional `ray` extra). Stage logic does not import Ray; only this package does."""

"""What every layer may import: the one error type for bad input, the package's version,
the console set-up and the reader of small data files. Nothing here imports a layer."""

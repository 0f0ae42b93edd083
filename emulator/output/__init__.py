"""A run's life on disk: staged into its folder, written (summary, CSV files, report,
plots, its scenario as it ran and the files it named), and read back and run again."""

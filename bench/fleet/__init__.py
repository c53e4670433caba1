"""The operator's cost at fleet scale (see __main__.py); sim/ is the Go fleet simulator."""

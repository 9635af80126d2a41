"""First-look processing of runs as they are measured: frames reduced as they arrive, the first look
at stop (``sibyls.saxs.analysis``), the products written, the results merged into the run's
lambda-ber record and stored in Tiled. Runs in the processing service, never in the RE worker."""

"""First look at SAXS curves: frame screening (CorMap), averaging, buffer subtraction, Guinier, MW,
Kratky, SEC peak analysis, plots and summary tables — what a SAXS user reads after each run."""

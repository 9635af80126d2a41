"""SIBYLS SAXS science: frames → I(q) → first look → products, and the service that runs it.

=====================  ==========================================================================
``saxs.reduction``     frames → I(q): PONI geometry, corrected integration (agrees with pyFAI),
                       normalisation, absolute scale
``saxs.analysis``      the first look on curves: CorMap, averaging, subtraction, Guinier, MW,
                       Kratky, SEC, plots, summary tables
``saxs.processing``    runs' documents → first look → products; the processing service, record
                       results, summaries, processed curves in Tiled; ``sibyls process``
``saxs.exports``       a run's data for other programs: NXcanSAS, CSV, JSON, SPEC, PNG
=====================  ==========================================================================
"""

"""Calibration constants of the first look, each stated once: the protein scattering power for MW from
I(0)/c on absolute scale, Rambo & Tainer's protein constant for MW from Vc, the MALS instrument
constant. The simulator (``devices/sim/physics.py``) keeps its own copies so that the devices layer
stays independent of metadata; ``tests/saxs/analysis`` checks that both agree."""

from __future__ import annotations

# I(0)/(c·MW) of a typical protein in water on absolute scale, in cm⁻¹ per (mg/mL · kDa):
# MW [kDa] = I(0) [cm⁻¹] / (c [mg/mL] · PROTEIN_I0_PER_MG_ML_KDA).
PROTEIN_I0_PER_MG_ML_KDA = 7.2e-4

# Rambo & Tainer (Nature 2013): Qr = Vc²/Rg (Å³), MW [Da] = Qr / 0.1231 for proteins.
RAMBO_TAINER_PROTEIN_QR_PER_DA = 0.1231
# Upper q of the Vc integral (Å⁻¹), as Rambo & Tainer recommend for proteins.
VC_Q_MAX = 0.3

# Bovine serum albumin, the usual I(0)/c standard when data are not on absolute scale.
BSA_MW_KDA = 66.4

# MALS: molar mass [kDa] = MALS_KDA_PER_V_PER_RIU · (LS − LS baseline) [V] / (RI − RI baseline) [RIU].
# The instrument constant folds the 90° detector's calibration, dn/dc (0.185 mL/g for proteins)
# and the optical constant; a beamline sets its own after a BSA injection.
MALS_KDA_PER_V_PER_RIU = 0.925

# CorMap (FreeSAS gof): a frame differs when its Bonferroni-adjusted P is below this.
CORMAP_ALPHA = 0.01

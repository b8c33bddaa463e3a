"""``python -m adelabel``, which ``torchrun --nproc_per_node N -m adelabel train ...`` runs."""
from adelabel.cli import main

main()

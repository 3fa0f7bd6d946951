"""``python -m pgm_ladder.training COMMAND ...``: the training commands on their own
(also what ``torchrun -m pgm_ladder.training train ...`` runs)."""
import sys

from pgm_ladder.training.commands import main

sys.exit(main())

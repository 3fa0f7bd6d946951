"""The numbers of RLadder Table 3 (SPEC §6), as printed in our copy of the paper."""
from __future__ import annotations

from .config import CORPORA

#: RLadder Table 3, columns Piano-midi.de, Nottingham, MuseData, JSB Chorales (None: blank)
PAPER_JOINT = {
    "NADE masked (Berglund et al. 2015)": (7.42, 3.32, 6.48, 8.51),
    "NADE (Berglund et al. 2015)": (7.05, 2.89, 5.54, 7.59),
    "RNN-RBM (Boulanger-Lewandowski et al. 2012)": (7.09, 2.39, 6.01, 6.27),
    "RNN-NADE (HF) (Boulanger-Lewandowski et al. 2012)": (7.05, 2.31, 5.60, None),
    "LSTM-NADE (Johnson 2017)": (7.39, 2.06, 5.03, 6.10),
    "TP-LSTM-NADE (Johnson 2017)": (5.49, 1.64, 4.34, 5.92),
    "BALSTM (Johnson 2017)": (5.00, 1.62, 3.90, 5.86),  # SPEC §6; our copy prints only 5.86
}
PAPER_MARGINAL = {
    "RNN (Berglund et al. 2015)": (7.88, 3.87, 7.43, 8.76),
    "LSTM (Jozefowicz et al. 2015)": (6.866, 3.492, None, None),
    "MUT1 (Jozefowicz et al. 2015)": (6.792, 3.254, None, None),
    "RLadder (paper, mean of 10 seeds)": (6.19, 2.42, 5.69, 5.64),
}
PAPER_RLADDER = dict(zip(CORPORA, PAPER_MARGINAL["RLadder (paper, mean of 10 seeds)"]))

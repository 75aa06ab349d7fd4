"""The one per-column standardiser of the library: KSG, the neural estimators' inputs, InfoNet's
projections and MIST's features all call `standardise`.

Zero mean and unit population variance per column, computed by scikit-learn's `StandardScaler`,
as BMI does (KSG must equal BMI's to 1e-6, also on tied data, where the rounding of the
standardised values decides the neighbour counts). Constant-column rule (scikit-learn's): a column
whose variance is within float rounding of zero, relative to its mean (var <= n eps var + (n eps
mean)^2), is only centred, not scaled. Dividing by its rounding noise would blow that noise up to
unit variance; the rule is relative, so a column of tiny values that do vary is scaled like any other.
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler


def standardise(a: np.ndarray) -> np.ndarray:
    """Columns of `a` (n, d) to zero mean and unit population variance (see the module's constant rule)."""
    return StandardScaler().fit_transform(a)

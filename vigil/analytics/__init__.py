"""Scene analytics: zones, lines, loitering, crowd, behaviour rules over tracks and capture time.

``RuleEngine`` (one per camera) is the entry point; the rule classes can be used alone.
"""

from vigil.analytics.engine import RuleEngine, RuleOutput
from vigil.analytics.heatmap import DensityHeatmap
from vigil.types import CountSample

__all__ = ["CountSample", "DensityHeatmap", "RuleEngine", "RuleOutput"]
